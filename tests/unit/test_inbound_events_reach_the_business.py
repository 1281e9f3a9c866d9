"""Every 8x8 event casebridge answers 2xx reaches the business: on the case timeline and on the bus, whatever its
arrival order, its size, a failed publish or a race. The real handlers; AWS on moto; 8x8's client faked."""
# ruff: noqa: F811 - fixtures (`api`, `metrics_seen`) come from the modules they are imported from

from __future__ import annotations

import json
import time
import zlib
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from tests.support.events import EVENT_EXTRAS, webhook_body
from tests.support.queue import process, receive, sqs_batch
from tests.support.samples import (
    CASE_ID,
    CONVERSATION_ID,
    accept_messages,
    invoke,
    sample_api_event,
    sample_webhook_event,
)
from tests.support.signing import WebhookSigner
from tests.unit.test_delivery_edges import (  # noqa: F401 - `metrics_seen` is a fixture
    fail_publishes,
    get_case,
    metrics_seen,
    open_case,
    types,
)
from tests.unit.test_webhook_intake_defenses import api, body_of, queued  # noqa: F401 - `api` is a fixture


def deliver(functions: SimpleNamespace, signer: WebhookSigner, body: bytes, **sign: Any) -> Any:
    return invoke(functions.webhook, sample_webhook_event("chat-api-v2/webhook_queued.json", signer, body=body, **sign))


def open_failing_before_adopting(
    functions: SimpleNamespace, services: Any, signer: WebhookSigner, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """8x8's QUEUED arrives before the case knows its conversation; the open records the conversation and fails
    reading the early events (once). Returns the store's real reading of them."""
    body = webhook_body("QUEUED", CONVERSATION_ID, int(time.time() * 1000), **EVENT_EXTRAS["QUEUED"])
    assert deliver(functions, signer, body).body["status"] == "kept"
    real = services.store.early_events
    calls = {"n": 0}

    def failing_once(conversation_id: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected: the query failed")
        return real(conversation_id)

    monkeypatch.setattr(services.store, "early_events", failing_once)
    assert open_case(functions).status >= 500
    return real


# ---- early events: adopted whatever happens to a publish ----------------------------------------------------
def test_early_events_are_adopted_when_conversation_opened_cannot_be_published(
    functions: SimpleNamespace, services: Any, event_bus: Any, webhook_signer: WebhookSigner
) -> None:
    """QUEUED arrives before the case knows its conversation; publishing ConversationOpened fails. The early event
    is still taken into the case (state, timeline), and both reach the bus with the next request."""
    body = webhook_body("QUEUED", CONVERSATION_ID, int(time.time() * 1000), **EVENT_EXTRAS["QUEUED"])
    assert deliver(functions, webhook_signer, body).body["status"] == "kept"
    fail_publishes(services, False)
    first = open_case(functions)
    assert first.status >= 500, first.raw
    assert services.store.early_events(CONVERSATION_ID) == [], "adopted although the publish failed"
    view = get_case(functions)
    assert (view.status, view.body["state"]) == (200, "queued"), view.raw
    assert types(event_bus) == ["ConversationOpened", "Queued"]


def test_an_open_retry_adopts_early_events_a_failed_open_left_behind(
    functions: SimpleNamespace,
    services: Any,
    event_bus: Any,
    webhook_signer: WebhookSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The open recorded the conversation and then failed before adopting (here: the store's query fails once).
    The client's retry of the open takes the early events in."""
    real = open_failing_before_adopting(functions, services, webhook_signer, monkeypatch)
    retry = open_case(functions)
    assert retry.status in (200, 201), retry.raw
    assert real(CONVERSATION_ID) == []
    view = get_case(functions)
    assert view.body["state"] == "queued", view.raw
    assert types(event_bus) == ["ConversationOpened", "Queued"]


def test_a_read_of_the_case_adopts_early_events_a_failed_open_left_behind(
    functions: SimpleNamespace,
    services: Any,
    event_bus: Any,
    webhook_signer: WebhookSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The open recorded the conversation and failed before adopting; nobody retries the open. A read of the case
    (its state, its events) takes the early events in."""
    real = open_failing_before_adopting(functions, services, webhook_signer, monkeypatch)
    view = get_case(functions)
    assert (view.status, view.body["state"]) == (200, "queued"), view.raw
    assert real(CONVERSATION_ID) == []
    assert types(event_bus) == ["ConversationOpened", "Queued"]


# ---- Gateway messages: only casebridge's own posts are echoes ---------------------------------------------
@pytest.mark.parametrize("api", ["chat-gateway-v1"], indirect=True)  # only the Gateway sends every message
def test_gateway_messages_casebridge_did_not_post_are_published_whatever_the_sender_type(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any, fifo_queues: Any
) -> None:
    """A MESSAGE with isEcho false and sender.type `Agent`, `AGENT`, `""` (8x8's own example), `system`, or a
    user post casebridge never made, used to be kept as an echo and never published. Now only what casebridge
    itself posted (its fingerprint, recorded by the sender before the post) is an echo."""
    open_case(functions)
    accept_messages(functions.outbound, "a customer line")
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    assert process(functions, batch) == [], "delivered through the sender"
    event_bus.published()
    senders = [
        ({"type": "Agent", "id": "agent-1"}, "AgentMessage"),
        ({"type": "AGENT", "id": "agent-1"}, "AgentMessage"),
        ({"type": "", "id": "agent-1"}, "AgentMessage"),
        ({"type": "system"}, "SystemMessage"),
        ({"type": "user", "id": "someone-else"}, "SystemMessage"),
    ]
    for n, (sender, _) in enumerate(senders):
        body = body_of(api, "MESSAGE", isEcho=False, sender=sender, text=f"line {n}")
        answer = deliver(functions, webhook_signer, body)
        assert (answer.status, answer.body) == (200, {"status": "accepted"}), (sender, answer.raw)
    echo = body_of(api, "MESSAGE", isEcho=False, sender={"type": "user", "id": "u"}, text="a customer line")
    assert deliver(functions, webhook_signer, echo).body == {"status": "kept"}, "our own post, echoed back"
    published = [(e["detail-type"], e["detail"]) for e in event_bus.published()]
    assert sorted(t for t, _ in published) == sorted(t for _, t in senders)
    system = [d for t, d in published if t == "SystemMessage"]
    assert sorted(d["senderType"] for d in system) == ["system", "user"]
    assert all(d["text"].startswith("line ") for _, d in published)


# ---- every event on the timeline and the bus, whatever its order; the state from 8x8's order -----------
@pytest.mark.parametrize("api", ["chat-gateway-v1"], indirect=True)  # "user left" is a Gateway event
def test_a_late_customer_left_is_recorded_published_and_closes_the_case(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """8x8's "user left" stamped before the agent left but arriving after it used to go nowhere (neither
    timeline nor bus) and leave the case agent_left; in the other order the case closed. Now both orders close
    the case, and every event is on the timeline and the bus."""
    open_case(functions)
    event_bus.published()
    t0 = int(time.time() * 1000) - 60_000
    events = [
        body_of(api, "QUEUED", timestamp=t0, queueId="q-1", queueName="Support"),
        body_of(api, "MEMBERS_CHANGED", timestamp=t0 + 1000, memberType="agent", change="joined", id="agent-1"),
        body_of(api, "MEMBERS_CHANGED", timestamp=t0 + 3000, memberType="agent", change="left", id="agent-1"),
        body_of(api, "MEMBERS_CHANGED", timestamp=t0 + 2000, memberType="user", change="left"),  # arrives late
    ]
    for body in events:
        answer = deliver(functions, webhook_signer, body)
        assert (answer.status, answer.body) == (200, {"status": "accepted"}), answer.raw
    view = get_case(functions)
    assert view.body["state"] == "closed", view.raw
    # (The escalation may add its own events on AgentLeft, e.g. HandedBack: 8x8's four are what this is about.)
    published = [e["detail-type"] for e in event_bus.published()]
    assert sorted(t for t in published if t in EIGHT_BY_EIGHT_TYPES) == [
        "AgentJoined",
        "AgentLeft",
        "CustomerLeft",
        "Queued",
    ]
    timeline = invoke(functions.lifecycle, sample_api_event("case_events.json", case_id=CASE_ID)).body["events"]
    on_timeline = sorted(e["type"] for e in timeline if e["type"] in EIGHT_BY_EIGHT_TYPES)
    assert on_timeline == ["AgentJoined", "AgentLeft", "CustomerLeft", "Queued"]


EIGHT_BY_EIGHT_TYPES = {"Queued", "AgentJoined", "AgentLeft", "CustomerLeft"}


# ---- events over EventBridge's 256 KB -----------------------------------------------------------------------
def refuse_oversized_entries(services: Any, seen: list[int]) -> None:
    """EventBridge's own check, in front of moto (which does not enforce it): an entry over 256 KB, counted as
    AWS documents (time 14 bytes + UTF-8 of source, detail-type, detail, resources), fails that entry."""

    def check(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params["body"]
        entries = json.loads(body.decode() if isinstance(body, bytes) else body)["Entries"]
        sizes = [
            14
            + sum(len(str(e.get(f, "")).encode()) for f in ("Source", "DetailType", "Detail"))
            + sum(len(r.encode()) for r in e.get("Resources", []))
            for e in entries
        ]
        seen.extend(sizes)
        if all(size <= 256 * 1024 for size in sizes):
            return None
        failed = [{"ErrorCode": "ValidationException", "ErrorMessage": "too big"} for _ in entries]
        return AWSResponse("https://events.test", 200, HTTPHeaders(), None), {"FailedEntryCount": 1, "Entries": failed}

    services.publisher.client.meta.events.register_first("before-call.events.PutEvents", check)


@pytest.mark.parametrize("api", ["chat-api-v2", "chat-gateway-v1"], indirect=True)
def test_an_agent_text_of_non_ascii_characters_reaches_the_bus_within_eventbridges_limit(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """A ~90 KB text of 4-byte characters became a PutEvents entry over 256 KB (json.dumps escaped each one to
    12 bytes): refused, 5xx, nothing recorded, for every retry of 8x8. Now the detail is UTF-8: 90 KB, published
    whole, once."""
    from casebridge.services import get_services  # noqa: PLC0415

    open_case(functions)
    event_bus.published()
    sizes: list[int] = []
    refuse_oversized_entries(get_services(), sizes)
    text = "😀" * 22_500  # 90 KB of UTF-8
    if api == "chat-api-v2":
        payload: dict[str, Any] = {"eventType": "TEXT", "messageType": "AGENT", "agentId": "agent-1", "message": text}
    else:
        payload = {"eventType": "MESSAGE", "data": {"sender": {"type": "agent", "id": "agent-1"}, "text": text}}
    payload.update(conversationId=CONVERSATION_ID, timestamp=int(time.time() * 1000))
    body = json.dumps(payload, ensure_ascii=False).encode()
    answer = deliver(functions, webhook_signer, body)
    assert (answer.status, answer.body) == (200, {"status": "accepted"}), answer.raw[:300]
    [published] = [e["detail"] for e in event_bus.published()]
    assert published["text"] == text and "omitted" not in published
    assert len(sizes) == 1 and sizes[0] <= 256 * 1024, "published once, within the limit"


def test_an_event_over_eventbridges_limit_is_published_as_a_reference_without_its_content(
    services: Any, event_bus: Any, metrics_seen: list[str]
) -> None:
    """An event too big even as UTF-8 (a timeline entry made from parts that each fit) is published once, as a
    reference: the same eventId without its content, `omitted` naming what is on the timeline only."""
    from casebridge.store.records import TimelineEntry  # noqa: PLC0415

    sizes: list[int] = []
    refuse_oversized_entries(services, sizes)
    detail = {"agentId": "agent-1", "text": "é" * 140_000, "cards": [{"contentType": "x", "content": {}}]}
    entry = TimelineEntry("evt-big", "AgentMessage", CONVERSATION_ID, 1, 2, detail)
    services.publisher.publish(CASE_ID, [entry, replace(entry, event_id="evt-small", detail={"agentId": "a"})])
    [big, small] = [e["detail"] for e in event_bus.published()]
    assert big["eventId"] == "evt-big" and big["omitted"] == ["text"] and "text" not in big and big["cards"]
    assert small["eventId"] == "evt-small" and "omitted" not in small
    assert max(sizes) <= 256 * 1024 and metrics_seen.count("EventsPublishedAsReference") == 1


def agent_text_body(api: str, text: str) -> bytes:
    """An agent's text message in the API's dialect, as 8x8 sends it (UTF-8, not escaped)."""
    if api == "chat-api-v2":
        payload: dict[str, Any] = {"eventType": "TEXT", "messageType": "AGENT", "agentId": "agent-1", "message": text}
    else:
        payload = {"eventType": "MESSAGE", "data": {"sender": {"type": "agent", "id": "agent-1"}, "text": text}}
    payload.update(conversationId=CONVERSATION_ID, timestamp=int(time.time() * 1000))
    return json.dumps(payload, ensure_ascii=False).encode()


def agent_messages_on_the_timeline(functions: SimpleNamespace) -> list[dict[str, Any]]:
    answer = invoke(functions.lifecycle, sample_api_event("case_events.json", case_id=CASE_ID))
    assert answer.status == 200, answer.raw[:300]
    return [e for e in answer.body["events"] if e["type"] == "AgentMessage"]


@pytest.mark.parametrize("api", ["chat-api-v2", "chat-gateway-v1"], indirect=True)
def test_an_agent_text_longer_than_the_business_apis_limit_is_recorded_and_published_whole(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """A signed agent message of 70,000 characters was answered 400 (a 65,536-character cap meant for the
    business API's input): nothing on the timeline or the bus. 8x8's own events are not capped by length."""
    open_case(functions)
    event_bus.published()
    sizes: list[int] = []
    refuse_oversized_entries(services_now(), sizes)
    text = "a" * 70_000
    answer = deliver(functions, webhook_signer, agent_text_body(api, text))
    assert (answer.status, answer.body) == (200, {"status": "accepted"}), answer.raw[:300]
    [recorded] = agent_messages_on_the_timeline(functions)
    assert recorded["text"] == text and "textTruncated" not in recorded
    [published] = [e["detail"] for e in event_bus.published()]
    assert published["eventId"] == recorded["eventId"] and published["text"] == text
    assert len(sizes) == 1 and sizes[0] <= 256 * 1024


@pytest.mark.parametrize("api", ["chat-api-v2", "chat-gateway-v1"], indirect=True)
@pytest.mark.parametrize("char", ["a", "😀"], ids=["ascii", "4-byte"])
def test_an_agent_text_over_dynamodbs_item_limit_is_recorded_cut_with_a_marker_and_published_as_a_reference(
    functions: SimpleNamespace, api: str, char: str, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """A text that makes the timeline entry larger than DynamoDB's 400 KB item: the body was refused (413 over
    256 KB, 400 over 65,536 characters) and, past those, the write would fail every retry. Now the entry keeps the
    text cut to what fits (whole characters), says so (`textTruncated`, `textLength` in characters), and the event
    is answered 2xx and published: as a reference, the cut text being over EventBridge's 256 KB."""
    open_case(functions)
    event_bus.published()
    sizes: list[int] = []
    refuse_oversized_entries(services_now(), sizes)
    text = char * (500_000 if char == "a" else 150_000)  # 500 KB and 600 KB of UTF-8
    answer = deliver(functions, webhook_signer, agent_text_body(api, text))
    assert (answer.status, answer.body) == (200, {"status": "accepted"}), answer.raw[:300]
    [recorded] = agent_messages_on_the_timeline(functions)
    kept = recorded["text"]
    assert text.startswith(kept) and 300_000 < len(kept.encode()) < 400_000, len(kept.encode())
    assert (recorded["textTruncated"], recorded["textLength"]) == (True, len(text))
    [published] = [e["detail"] for e in event_bus.published()]
    assert published["eventId"] == recorded["eventId"] and published["omitted"] == ["text"]
    assert (published["textTruncated"], published["textLength"]) == (True, len(text))
    assert len(sizes) == 1 and sizes[0] <= 256 * 1024


@pytest.mark.parametrize("api", ["chat-api-v2"], indirect=True)
def test_an_early_agent_text_over_dynamodbs_item_limit_is_kept_cut_and_adopted_with_its_marker(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """The same text arriving before the case knows its conversation: kept under the conversation (another item,
    other keys), cut to fit, and taken into the case with its marker when the case is opened."""
    text = "b" * 500_000
    answer = deliver(functions, webhook_signer, agent_text_body(api, text))
    assert (answer.status, answer.body["status"]) == (200, "kept"), answer.raw[:300]
    assert open_case(functions).status == 201
    [recorded] = agent_messages_on_the_timeline(functions)
    assert text.startswith(recorded["text"]) and (recorded["textTruncated"], recorded["textLength"]) == (
        True,
        len(text),
    )
    published = {e["detail-type"]: e["detail"] for e in event_bus.published()}
    assert published["AgentMessage"]["omitted"] == ["text"] and published["AgentMessage"]["textTruncated"] is True


@pytest.mark.parametrize("api", ["chat-gateway-v1"], indirect=True)  # only the Gateway carries cards
def test_gateway_cards_too_big_for_an_item_are_dropped_with_a_marker_and_the_text_kept(
    functions: SimpleNamespace, api: str, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    """Cards are 8x8's objects of any size: cards that alone overfill the item are dropped (`cardsDropped`, their
    count), the text kept whole, and the event recorded and published."""
    open_case(functions)
    event_bus.published()
    cards = [{"contentType": "application/vnd.example", "content": {"body": "c" * 60_000}} for _ in range(8)]
    payload = {
        "eventType": "MESSAGE",
        "conversationId": CONVERSATION_ID,
        "timestamp": int(time.time() * 1000),
        "data": {"sender": {"type": "agent", "id": "agent-1"}, "text": "see the cards", "cards": cards},
    }
    answer = deliver(functions, webhook_signer, json.dumps(payload).encode())
    assert (answer.status, answer.body) == (200, {"status": "accepted"}), answer.raw[:300]
    [recorded] = agent_messages_on_the_timeline(functions)
    assert (recorded["text"], recorded["cardsDropped"]) == ("see the cards", 8) and "cards" not in recorded
    [published] = [e["detail"] for e in event_bus.published()]
    assert published["cardsDropped"] == 8 and published["text"] == "see the cards"


def services_now() -> Any:
    from casebridge.services import get_services  # noqa: PLC0415 - the `api` fixture builds them

    return get_services()


# ---- racing events of one case: each published once ---------------------------------------------------------
@pytest.mark.parametrize("api", ["chat-api-v2"], indirect=True)
def test_the_loser_of_a_race_between_two_events_of_a_case_publishes_its_event_once(
    functions: SimpleNamespace,
    api: str,
    webhook_signer: WebhookSigner,
    event_bus: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two state-changing events of one case race: the loser's transaction fails on the case's version, it reads
    the case again and records. It used to publish before each try, so its event reached the bus twice."""
    from casebridge.services import get_services  # noqa: PLC0415
    from casebridge.store.records import TimelineEntry  # noqa: PLC0415

    open_case(functions)
    event_bus.published()
    store = get_services().store
    real = store.record_case_event
    raced = {"done": False}

    def with_a_racing_writer(case: Any, entry: Any, live: Any, **kwargs: Any) -> Any:
        if not raced["done"]:  # another container's event of the case commits first
            raced["done"] = True
            other = TimelineEntry("evt-racer", "Transferred", case.conversation_id, 1, 1)
            real(case, other, case.live, pending_publish=False)
        return real(case, entry, live, **kwargs)

    monkeypatch.setattr(store, "record_case_event", with_a_racing_writer)
    answer = deliver(functions, webhook_signer, queued(api), event_id="evt-loser")
    assert (answer.status, answer.body) == (200, {"status": "accepted"}), answer.raw
    assert [e["detail"]["eventId"] for e in event_bus.published()] == ["evt-loser"]


# ---- a forged body with the same CRC32 first: the genuine event still gets in ------------------------------
def same_crc32(prefix: bytes, suffix: bytes, target: int, free: int = 10) -> bytes:
    """prefix + `free` letters + suffix with the CRC32 `target`: CRC32 is affine over GF(2), so 4 bits of each
    letter (0x40..0x4F) give 4*free unknowns of a linear system, solved by elimination."""
    base = bytearray(prefix + b"@" * free + suffix)
    start = len(prefix)
    c0 = zlib.crc32(bytes(base))
    columns = []
    for i in range(free * 4):
        flipped = bytearray(base)
        flipped[start + i // 4] ^= 1 << (i % 4)
        columns.append(zlib.crc32(bytes(flipped)) ^ c0)
    want = target ^ c0
    rows: list[tuple[int, int]] = []  # (pivot-reduced column, combination of unknowns)
    for i, flip in enumerate(columns):
        column, combination = flip, 1 << i
        for pivot, comb in rows:
            if column ^ pivot < column:
                column, combination = column ^ pivot, combination ^ comb
        if column:
            rows.append((column, combination))
            rows.sort(reverse=True)
    solution = 0
    for pivot, comb in rows:
        if want ^ pivot < want:
            want, solution = want ^ pivot, solution ^ comb
    assert want == 0, "no solution: use more free letters"
    for i in range(free * 4):
        if solution >> i & 1:
            base[start + i // 4] ^= 1 << (i % 4)
    assert zlib.crc32(bytes(base)) == target
    return bytes(base)


def test_a_forged_body_with_the_same_crc32_first_cannot_keep_the_genuine_event_out(
    functions: SimpleNamespace, services: Any, webhook_signer: WebhookSigner, event_bus: Any, metrics_seen: list[str]
) -> None:
    """Whoever holds a delivery's headers can send another body with the same CRC32 first: the signature
    verifies. It used to be accepted and the genuine event (and all of 8x8's retries) answered 401: lost. Now the
    genuine body is recorded and published too, both are flagged bodyConflict, and the conflict is counted."""
    assert open_case(functions).status == 201
    event_bus.published()
    genuine = webhook_body("QUEUED", CONVERSATION_ID, int(time.time() * 1000), **EVENT_EXTRAS["QUEUED"])
    forged = same_crc32(genuine[:-1] + b',"note":"', b'"}', zlib.crc32(genuine))
    assert json.loads(forged)["eventType"] == "QUEUED" and forged != genuine
    headers = webhook_signer.headers(genuine, event_id="evt-captured")
    event = sample_webhook_event("chat-api-v2/webhook_queued.json", webhook_signer, body=genuine)
    for name, value in headers.items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    first = invoke(functions.webhook, {**event, "body": forged.decode()})
    assert (first.status, first.body) == (200, {"status": "accepted"}), "the forger's body verifies"
    real = invoke(functions.webhook, event)
    assert (real.status, real.body) == (200, {"status": "accepted"}), real.raw
    retry = invoke(functions.webhook, event)
    assert (retry.status, retry.body) == (200, {"status": "duplicate"})
    published = [e["detail"] for e in event_bus.published()]
    assert [p["eventId"].split(":")[0] for p in published] == ["evt-captured", "evt-captured"]
    assert published[1].get("bodyConflict") is True
    assert metrics_seen.count("WebhookBodyConflicts") == 1
