"""functions/webhook_intake: verify, deduplicate, record, publish, answer — with the events/ samples re-signed."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.aws import aws_client
from tests.support.fakes import StubJwkFetcher
from tests.support.paths import EVENTS_DIR
from tests.support.samples import CONVERSATION_ID, Answer, invoke, load_event, sample_api_event, sample_webhook_event

SAMPLES = [
    "chat-api-v2/webhook_queued.json",
    "chat-api-v2/webhook_agent_joined.json",
    "chat-api-v2/webhook_text.json",
    "chat-api-v2/webhook_transfer.json",
    "chat-api-v2/webhook_agent_left.json",
]


def deliver(functions: SimpleNamespace, name: str, signer: Any, **kw: Any) -> Answer:
    return invoke(functions.webhook, sample_webhook_event(name, signer, **kw))


NO_HISTORY = '{"customer": {"name": "Ada Lovelace"}}'


def open_case(functions: SimpleNamespace, case_id: str = "case-1001") -> None:
    # Without the sample's history (it would be on the timeline too): these tests are about 8x8's events.
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=case_id, body=NO_HISTORY))
    assert answer.status == 201, answer.raw


def case_view(functions: SimpleNamespace, case_id: str = "case-1001") -> dict[str, Any]:
    view: dict[str, Any] = invoke(functions.lifecycle, sample_api_event("get_case.json", case_id=case_id)).body
    return view


def timeline(functions: SimpleNamespace, case_id: str = "case-1001") -> list[dict[str, Any]]:
    answer = invoke(functions.lifecycle, sample_api_event("case_events.json", case_id=case_id, query={"limit": "100"}))
    events: list[dict[str, Any]] = answer.body["events"]
    return events


def table_items(services: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws_client("dynamodb").scan(TableName=services.settings.cases_table_name)["Items"]
    return items


def assert_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer.raw
    assert answer.body["error"]["code"] == code
    assert answer.body["error"]["message"]
    assert "Traceback" not in answer.raw


def test_samples_are_unsigned_placeholders(functions: SimpleNamespace, services: Any) -> None:
    """Invoked as they are (old transmission time, placeholder signature), the samples are refused."""
    assert_error(invoke(functions.webhook, load_event("chat-api-v2/webhook_queued.json")), 401, "Unauthorized")


def test_whole_lifecycle_from_the_samples(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    open_case(functions)
    event_bus.published()
    expected = [
        ("chat-api-v2/webhook_queued.json", "queued", "Queued"),
        ("chat-api-v2/webhook_agent_joined.json", "with_agent", "AgentJoined"),
        ("chat-api-v2/webhook_text.json", "with_agent", "AgentMessage"),
        ("chat-api-v2/webhook_transfer.json", "queued", "Transferred"),
        ("chat-api-v2/webhook_agent_left.json", "queued", "AgentLeft"),  # the LEFT after a TRANSFER is not the end
    ]
    for name, state, _ in expected:
        answer = deliver(functions, name, webhook_signer)
        assert answer.status == 200, (name, answer.raw)
        assert answer.body == {"status": "accepted"}
        assert case_view(functions)["state"] == state, name
    events = timeline(functions)
    assert [e["type"] for e in events] == ["ConversationOpened"] + [t for _, _, t in expected]
    text = events[3]
    assert text["text"] == "Grüße! Ihre Bestellung ist unterwegs — ETA 2 Tage ✓"
    assert (text["agentId"], text["agentName"], text["conversationId"]) == ("agent-7", "Grace Hopper", CONVERSATION_ID)
    queued = events[1]
    assert (queued["queueId"], queued["queueName"]) == ("101", "Support")  # ids normalised to strings
    published = event_bus.published()
    assert sorted(p["detail-type"] for p in published) == sorted(t for _, _, t in expected)
    assert all(p["detail"]["caseId"] == "case-1001" for p in published)


def test_agent_details_on_the_case(functions: SimpleNamespace, services: Any, webhook_signer: Any) -> None:
    open_case(functions)
    deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer)
    deliver(functions, "chat-api-v2/webhook_agent_joined.json", webhook_signer)
    view = case_view(functions)
    assert view["agent"] == {"id": "agent-7", "name": "Grace Hopper"}
    assert view["queue"] == {"id": "101", "name": "Support"}


def test_out_of_order_events_do_not_move_state_back(
    functions: SimpleNamespace, services: Any, webhook_signer: Any
) -> None:
    open_case(functions)
    assert deliver(functions, "chat-api-v2/webhook_agent_joined.json", webhook_signer).status == 200
    assert deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer).status == 200  # older timestamp, late
    assert case_view(functions)["state"] == "with_agent"
    assert [e["type"] for e in timeline(functions)][1:] == ["AgentJoined", "Queued"], "both are on the timeline"


def test_web_hook_verify_is_answered_200_and_writes_only_its_receipt(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    answer = deliver(functions, "chat-api-v2/webhook_verify.json", webhook_signer)
    assert answer.status == 200
    assert answer.body == {"status": "verified"}
    assert [(i["sk"]["S"], i["outcome"]["S"]) for i in table_items(services)] == [("RECEIPT", "verify")]
    assert event_bus.published() == []


@pytest.mark.parametrize(
    "case", [str.upper, str.title, lambda h: h[:5].upper() + h[5:]], ids=["upper", "title", "mixed"]
)
def test_header_names_in_any_case(functions: SimpleNamespace, services: Any, webhook_signer: Any, case: Any) -> None:
    answer = deliver(functions, "chat-api-v2/webhook_verify.json", webhook_signer, header_case=case)
    assert answer.status == 200, answer.raw


def test_base64_encoded_body_is_verified_over_the_decoded_bytes(
    functions: SimpleNamespace, services: Any, webhook_signer: Any
) -> None:
    open_case(functions)
    answer = deliver(functions, "chat-api-v2/webhook_text.json", webhook_signer, base64_encoded=True)
    assert answer.status == 200, answer.raw
    assert timeline(functions)[-1]["text"].startswith("Grüße!")


@pytest.mark.parametrize(
    "tamper",
    ["body", "retry", "event-id", "transmission-time", "signature", "tenant", "customer", "old"],
)
def test_bad_signature_is_401_and_nothing_is_written(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any, tamper: str
) -> None:
    open_case(functions)
    event_bus.published()
    before = table_items(services)
    if tamper == "old":
        event = sample_webhook_event(
            "chat-api-v2/webhook_queued.json", webhook_signer, tt=int(time.time() * 1000) - 600_000
        )
    else:
        event = sample_webhook_event("chat-api-v2/webhook_queued.json", webhook_signer)
        headers = event["headers"]
        if tamper == "body":
            event["body"] = event["body"].replace("Support", "Supp0rt")
        elif tamper == "retry":
            headers["x-8x8-retry"] = "1"
        elif tamper == "event-id":
            headers["x-8x8-event-id"] = "forged-event"
        elif tamper == "transmission-time":
            headers["x-8x8-transmission-time"] = str(int(headers["x-8x8-transmission-time"]) - 1)
        elif tamper == "signature":
            protected, _, sig = headers["x-8x8-signature"].partition("..")
            headers["x-8x8-signature"] = f"{protected}..{sig[:-4]}AAAA"
        elif tamper == "tenant":
            headers["x-8x8-tenant-id"] = "other-tenant"
        elif tamper == "customer":
            headers["x-8x8-customer-id"] = "other-customer"
    answer = invoke(functions.webhook, event)
    assert_error(answer, 401, "Unauthorized")
    assert table_items(services) == before
    assert event_bus.published() == []


def test_missing_signature_headers_is_401(functions: SimpleNamespace, services: Any) -> None:
    event = sample_api_event("get_case.json")
    event.update(resource="/webhooks/8x8", path="/webhooks/8x8", httpMethod="POST", body="{}", pathParameters=None)
    assert_error(invoke(functions.webhook, event), 401, "Unauthorized")


def test_key_endpoint_down_is_503_not_401(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, jwk_fetcher: StubJwkFetcher
) -> None:
    jwk_fetcher.down = True
    answer = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer)
    assert_error(answer, 503, "SigningKeyUnavailable")
    assert table_items(services) == []


def test_duplicate_delivery_has_one_effect(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    open_case(functions)
    event_bus.published()
    first = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer, event_id="evt-dup", retry=0)
    again = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer, event_id="evt-dup", retry=1)
    assert (first.status, first.body["status"]) == (200, "accepted")
    assert (again.status, again.body["status"]) == (200, "duplicate")
    assert [e["type"] for e in timeline(functions)] == ["ConversationOpened", "Queued"]
    assert [p["detail-type"] for p in event_bus.published()] == ["Queued"]


def test_duplicate_in_a_fresh_container_is_still_a_duplicate(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    open_case(functions)
    deliver(functions, "chat-api-v2/webhook_text.json", webhook_signer, event_id="evt-x")
    services.store._case_by_conversation.clear()  # a cold container has no conversation→case memory
    again = deliver(functions, "chat-api-v2/webhook_text.json", webhook_signer, event_id="evt-x", retry=3)
    assert again.body["status"] == "duplicate"
    assert [e["type"] for e in timeline(functions)].count("AgentMessage") == 1


def test_unknown_conversation_is_kept_then_adopted(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    kept = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer, event_id="evt-early")
    assert kept.status == 200
    assert kept.body == {"status": "kept", "reason": "unknown conversation"}
    assert event_bus.published() == [], "nothing is published before the event has a case"
    again = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer, event_id="evt-early", retry=1)
    assert again.body["status"] == "duplicate"
    open_case(functions)  # the fake 8x8 hands out the samples' conversation id
    view = case_view(functions)
    assert view["state"] == "queued"
    assert view["queue"] == {"id": "101", "name": "Support"}
    events = timeline(functions)
    # the adopted event takes its place on the timeline when it is adopted, after the opening (a channel that
    # read the opening gets it next); its receivedAt still says when it arrived
    assert [e["type"] for e in events] == ["ConversationOpened", "Queued"]
    assert events[1]["eventId"] == "evt-early" and events[1]["receivedAt"] <= events[0]["receivedAt"]
    assert services.store.early_events(CONVERSATION_ID) == []
    assert sorted(p["detail-type"] for p in event_bus.published()) == ["ConversationOpened", "Queued"]
    late_dup = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer, event_id="evt-early", retry=2)
    assert late_dup.body["status"] == "duplicate"


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"eventType": "QUEUED", "timestamp": 1}',  # no conversationId
        b'{"eventType": "QUEUED", "conversationId": "c", "timestamp": -5}',
        b"[]",
    ],
)
def test_signed_but_invalid_event_is_400(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, body: bytes
) -> None:
    answer = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer, body=body, event_id="evt-bad")
    assert_error(answer, 400, "InvalidRequest")
    # Kept for operators under its receipt (with the body), and nothing else written.
    items = table_items(services)
    assert [(i["sk"]["S"], i["outcome"]["S"]) for i in items] == [("RECEIPT", "malformed")]
    # What it holds is the body without personal data (here: all of it, or the length of what is not JSON).
    assert items[0]["keptBody"]["S"] == (body.decode() if body != b"not json at all" else "<not JSON: 15 bytes>")
    again = deliver(
        functions, "chat-api-v2/webhook_queued.json", webhook_signer, body=body, event_id="evt-bad", retry=1
    )
    assert (again.status, again.body) == (200, {"status": "duplicate"}), "8x8's retry of it stops here"


def test_unknown_event_type_is_answered_200_and_kept(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    """a 4xx would make 8x8 retry it for ever."""
    body = b'{"eventType": "SOMETHING_NEW", "conversationId": "c", "timestamp": 1}'
    answer = deliver(functions, "chat-api-v2/webhook_queued.json", webhook_signer, body=body)
    assert (answer.status, answer.body) == (200, {"status": "kept"})
    items = table_items(services)
    assert [(i["outcome"]["S"], i["eventType"]["S"], i["keptBody"]["S"]) for i in items] == [
        ("unhandled", "SOMETHING_NEW", body.decode())
    ]
    assert event_bus.published() == []


def test_same_event_id_with_another_body_is_kept_beside_it_not_refused(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    """the signature covers only a CRC32 of the body: another body under the same id is kept as a suspect."""
    first = deliver(functions, "chat-api-v2/webhook_verify.json", webhook_signer, event_id="evt-replayed")
    assert first.status == 200
    forged = b'{"eventType": "SOMETHING_NEW", "conversationId": "c", "timestamp": 2}'
    other = deliver(functions, "chat-api-v2/webhook_verify.json", webhook_signer, body=forged, event_id="evt-replayed")
    assert (other.status, other.body) == (200, {"status": "kept"})
    items = table_items(services)
    assert sorted(i["sk"]["S"].split("#")[0] for i in items) == ["RECEIPT", "RECEIPT"]
    assert all(i["bodyConflict"]["BOOL"] for i in items)


def test_webhook_body_over_api_gateways_limit_is_413(
    functions: SimpleNamespace, services: Any, webhook_signer: Any
) -> None:
    """Only a body API Gateway itself would refuse (over 10 MB) is refused for its size: anything it passes on
    is 8x8's to send (the business API's 256 KB does not apply to 8x8's events)."""
    from casebridge.webhooks import MAX_WEBHOOK_BODY_BYTES  # noqa: PLC0415

    message = "x" * MAX_WEBHOOK_BODY_BYTES
    body = json.dumps({"eventType": "TEXT", "conversationId": "c", "timestamp": 1, "message": message}).encode()
    assert_error(deliver(functions, "chat-api-v2/webhook_text.json", webhook_signer, body=body), 413, "PayloadTooLarge")


def test_a_webhook_body_over_the_business_apis_limit_is_taken(
    functions: SimpleNamespace, services: Any, webhook_signer: Any
) -> None:
    """A 300 KB agent text was answered 413 (the business API's 256 KB): 8x8 retried it, then it was lost."""
    now = int(time.time() * 1000)
    body = json.dumps({"eventType": "TEXT", "conversationId": "c", "timestamp": now, "message": "x" * 300_000})
    answer = deliver(functions, "chat-api-v2/webhook_text.json", webhook_signer, body=body.encode())
    assert (answer.status, answer.body["status"]) == (200, "kept"), answer.raw[:300]  # kept until "c" has a case


def test_unknown_fields_from_8x8_are_tolerated(functions: SimpleNamespace, services: Any, webhook_signer: Any) -> None:
    open_case(functions)
    payload = json.loads(load_event("chat-api-v2/webhook_agent_joined.json")["body"])
    payload["somethingNew"] = {"nested": True}
    answer = deliver(
        functions, "chat-api-v2/webhook_agent_joined.json", webhook_signer, body=json.dumps(payload).encode()
    )
    assert answer.status == 200 and answer.body["status"] == "accepted"


def test_gateway_samples_walk_a_whole_case(
    functions: SimpleNamespace, services: Any, fake_8x8: Any, webhook_signer: Any, event_bus: Any
) -> None:
    """Every Chat Gateway sample, re-signed, in the order 8x8 would send them: each is answered 2xx and the
    case ends closed by the customer's leaving."""
    from dataclasses import replace  # noqa: PLC0415

    from casebridge.contact_center.webhook_gateway import parse_webhook_event  # noqa: PLC0415
    from casebridge.services import set_services  # noqa: PLC0415

    fake_8x8.api = "chat-gateway-v1"
    set_services(replace(services, webhook_parser=parse_webhook_event))
    open_case(functions)
    samples = sorted(
        (f"chat-gateway-v1/{p.name}" for p in (EVENTS_DIR / "chat-gateway-v1").glob("webhook_*.json")),
        key=lambda name: json.loads(load_event(name)["body"]).get("timestamp", 0),
    )
    assert len(samples) >= 10
    for name in samples:
        answer = deliver(functions, name, webhook_signer)
        assert 200 <= answer.status < 300, (name, answer.raw)
    events = timeline(functions)
    types = [e["type"] for e in events]
    for kind in ("Queued", "AgentJoined", "AgentMessage", "MessageRead", "Transferred", "AgentLeft", "CustomerLeft"):
        assert kind in types, (kind, types)
    read = load_event("chat-gateway-v1/webhook_read_receipts.json")
    assert [e["readAt"] for e in events if e["type"] == "MessageRead"] == [json.loads(read["body"])["timestamp"]]
    # The agent after the transfer ends the interaction with a wrap-up code: it is handed back with it.
    assert [e.get("wrapUpCode") for e in events if e["type"] == "AgentLeft"] == [None, "Resolved"]
    assert [(e["reason"], e["wrapUpCode"]) for e in events if e["type"] == "HandedBack"] == [
        ("agent-ended", "Resolved")
    ]
    assert case_view(functions)["state"] == "closed"
