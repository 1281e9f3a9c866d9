"""Pushes to the channel through the real handlers on the local stack: the widget WebSocket (tokens, backlog then
live events in timeline order, reconnect from a cursor, an agent text over API Gateway's 128 KB frame limit, the
widget's own actions, a connection gone mid-push) and the signed webhooks (Standard Webhooks, retries, per-case
order, dead-letter)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from scripts.local_stack.channel_push import Delivery, WebhookReceiver
from scripts.local_stack.stack import LocalStack, StackOptions
from scripts.redrive_channel_webhooks import deliver_to, redrive
from tests.e2e.e2e_support import Client, e2e_emulator_config, wait_until


@pytest.fixture(scope="module", params=["chat-gateway-v1", "chat-api-v2"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The pushes do not depend on the 8x8 API; each API's stack shows it."""
    log = tmp_path_factory.mktemp("push") / "functions.log"
    options = StackOptions(
        stack_name="casebridge-push",
        emulator_config=e2e_emulator_config(),
        log_path=log,
        channel_webhook=True,
        api=request.param,
    )
    with LocalStack(options).start() as running:
        yield running
    print(f"functions' logs: {log}")


class Widget:
    """A browser widget's side of the channel WebSocket: frames received, kept in order."""

    def __init__(self, url: str) -> None:
        # Entered as the context manager websockets asks for; close() leaves it.
        self.socket: ClientConnection = connect(url, open_timeout=10).__enter__()
        self.frames: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        self.socket.send(json.dumps(frame))

    def wait(self, what: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for seen in self.frames:
            if what(seen):
                return seen
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no such frame within {timeout}s; got {[describe(f) for f in self.frames]}")
            try:
                frame: dict[str, Any] = json.loads(self.socket.recv(timeout=remaining))
            except TimeoutError:
                continue
            self.frames.append(frame)
            if what(frame):
                return frame

    def answer(self, request_id: str) -> dict[str, Any]:
        return self.wait(lambda f: f.get("requestId") == request_id)

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "eventId" in f]

    def close(self) -> None:
        self.socket.close()


def describe(frame: dict[str, Any]) -> str:
    return str(frame.get("type") or frame.get("action")) + (f"#{frame['sequence']}" if "sequence" in frame else "")


def token(client: Client, case_id: str) -> dict[str, Any]:
    answer = client.call("POST", f"/cases/{case_id}/channel-tokens")
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def agent_says(client: Client, case_id: str, text: str) -> None:
    client.agent(client.agent_of(case_id), "reply", text=text)


def text_event(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == "AgentMessage" and f.get("text") == text


# ---- tokens -------------------------------------------------------------------------------------------
def test_channel_token_route_needs_the_api_key_and_a_known_case(client: Client, opened: tuple[str, str]) -> None:
    case_id, _ = opened
    without_key = client.http.post(client.url(f"/cases/{case_id}/channel-tokens"), headers={"x-api-key": "wrong"})
    assert without_key.status_code == 403
    unknown = client.call("POST", f"/cases/no-such-{uuid.uuid4().hex[:8]}/channel-tokens")
    assert unknown.status_code == 404, unknown.text
    issued = token(client, case_id)
    assert issued["url"].startswith(client.stack.socket.url + "?token=")  # type: ignore[union-attr]
    assert 0 < issued["expiresAt"] - time.time() * 1000 <= 300_000 + 1000


def test_the_handshake_refuses_missing_altered_expired_and_foreign_tokens(
    client: Client, opened: tuple[str, str]
) -> None:
    from joserfc import jwt  # noqa: PLC0415
    from joserfc.jwk import OctKey  # noqa: PLC0415

    from casebridge.push import tokens  # noqa: PLC0415 - the layer is importable once the stack runs
    from casebridge.settings import get_settings  # noqa: PLC0415

    case_id, _ = opened
    base = client.stack.socket.url  # type: ignore[union-attr]
    good = token(client, case_id)["token"]
    header, claims, signature = good.split(".")
    expired = tokens.issue(get_settings(), case_id, now=time.time() - 3600)["token"]
    foreign = jwt.encode(
        {"alg": "HS256"},
        {"sub": case_id, "aud": tokens.AUDIENCE, "exp": int(time.time()) + 60},
        OctKey.import_key(b"another key of at least thirty-two bytes!"),
    )
    for refused in ("", f"?token={header}.{claims}.{signature[:-2]}AA", f"?token={expired}", f"?token={foreign}"):
        with pytest.raises(InvalidStatus) as refusal:
            connect(base + refused, open_timeout=10)
        assert refusal.value.response.status_code == 401, refused
    with connect(f"{base}?token={good}", open_timeout=10):  # and the good one opens
        pass


# ---- the widget WebSocket -------------------------------------------------------------------------------
def test_a_widget_gets_the_timeline_then_live_events_in_order_each_with_the_cursor_the_api_gives(
    client: Client, opened: tuple[str, str]
) -> None:
    case_id, _ = opened
    widget = Widget(token(client, case_id)["url"])
    widget.send({"action": "resume", "requestId": "r1"})
    assert widget.answer("r1")["status"] == 200
    for text in ("one", "two", "three"):
        agent_says(client, case_id, text)
    widget.wait(text_event("three"))
    events = widget.events()
    timeline = client.timeline(case_id)
    assert [e["sequence"] for e in events] == list(range(1, len(timeline) + 1))
    assert [(e["eventId"], e["cursor"]) for e in events] == [(e["eventId"], e["cursor"]) for e in timeline]
    assert [e["text"] for e in events if e["type"] == "AgentMessage"] == ["one", "two", "three"]
    widget.close()


def test_after_a_forced_disconnect_a_reconnect_from_the_cursor_misses_nothing_and_repeats_nothing(
    client: Client, stack: LocalStack, opened: tuple[str, str]
) -> None:
    case_id, _ = opened
    assert stack.socket is not None
    widget = Widget(token(client, case_id)["url"])
    agent_says(client, case_id, "before")
    last = widget.wait(text_event("before"))
    stack.socket.refuse_connections = True
    try:
        stack.socket.close_all()
        wait_until("the connection is forgotten", lambda: not stack.socket.connection_ids())  # type: ignore[union-attr]
        for text in ("while away 1", "while away 2", "while away 3"):
            agent_says(client, case_id, text)
        client.wait_event(case_id, "AgentMessage", count=4)
    finally:
        stack.socket.refuse_connections = False
    again = Widget(f"{token(client, case_id)['url']}&after={last['cursor']}")
    again.send({"action": "resume", "requestId": "r2"})
    agent_says(client, case_id, "after")
    again.wait(text_event("after"))
    texts = [e["text"] for e in again.events() if e["type"] == "AgentMessage"]
    assert texts == ["while away 1", "while away 2", "while away 3", "after"]
    sequences = [e["sequence"] for e in again.events()]
    assert sequences == list(range(last["sequence"] + 1, last["sequence"] + 1 + len(sequences)))
    again.close()


@pytest.mark.parametrize("long_text", ["a" * 300_000, "\U0001f600" * 100_000], ids=["ascii", "emoji"])
def test_an_agent_text_over_the_frame_limit_reaches_the_widget_cut_and_marked_and_the_next_event_follows(
    client: Client, opened: tuple[str, str], long_text: str
) -> None:
    """The stand-in refuses a post over 128 KB as API Gateway does (413 PayloadTooLargeException): the frame of
    such a text goes cut to fit and marked, the next event follows it, and a resume from before it sends it again."""
    case_id, _ = opened
    widget = Widget(token(client, case_id)["url"])
    widget.send({"action": "resume", "requestId": "r1"})
    assert widget.answer("r1")["status"] == 200
    agent_says(client, case_id, "before the long one")
    before = widget.wait(text_event("before the long one"))
    agent_says(client, case_id, long_text)
    agent_says(client, case_id, "after the long one")
    after = widget.wait(text_event("after the long one"), timeout=20)
    cut = widget.wait(lambda f: f.get("type") == "AgentMessage" and f.get("textLength") == len(long_text))
    assert long_text.startswith(cut["text"]) and len(cut["text"]) < len(long_text) and cut["textTruncated"] is True
    assert (before["sequence"] + 1, before["sequence"] + 2) == (cut["sequence"], after["sequence"])
    timeline = {e["sequence"]: e for e in client.timeline(case_id)}
    assert timeline[cut["sequence"]]["cursor"] == cut["cursor"]  # its place on the timeline, as the API gives it

    widget.send({"action": "resume", "after": before["cursor"], "requestId": "r2"})
    assert widget.answer("r2")["body"] == {"sent": 2}
    again = [e for e in widget.events() if e.get("sequence") in (cut["sequence"], after["sequence"])]
    assert [(e["sequence"], e["text"]) for e in again] == [
        (cut["sequence"], cut["text"]),
        (after["sequence"], after["text"]),
    ] * 2
    widget.close()


def test_widget_messages_and_typing_take_the_rest_routes_validation_and_path(
    client: Client, opened: tuple[str, str]
) -> None:
    case_id, conversation_id = opened
    widget = Widget(token(client, case_id)["url"])
    for bad in ({"text": ""}, {"text": "x", "unknown": 1}, {"text": 5}, {"text": "lone \ud800"}):
        widget.send({"action": "message", "requestId": "bad", **bad})
        answer = widget.answer("bad")
        widget.frames.remove(answer)
        rest = client.call("POST", f"/cases/{case_id}/messages", json=bad)
        assert (answer["status"], answer["body"]) == (rest.status_code, rest.json()), bad
    widget.send({"action": "message", "requestId": "bot", "text": "hi", "authorType": "bot"})
    assert widget.answer("bot")["status"] == 400
    widget.send({"action": "message", "requestId": "m1", "text": "from the widget", "clientMessageId": "w-1"})
    accepted = widget.answer("m1")
    assert accepted["status"] == 202 and accepted["body"]["status"] == "accepted"
    wait_until(
        "the agent sees the widget's message",
        lambda: any(m.get("text") == "from the widget" for m in client.agent_view(conversation_id)["transcript"]),
    )
    widget.send({"action": "typing", "requestId": "t1"})
    typing = widget.answer("t1")
    rest_typing = client.call("POST", f"/cases/{case_id}/typing", json={})
    assert typing["status"] == rest_typing.status_code  # 204 on the Gateway; 400 on v2, which has no typing
    if rest_typing.status_code != 204:
        assert typing["body"] == rest_typing.json()
    widget.socket.send("not json")
    assert widget.wait(lambda f: f.get("status") == 400 and f.get("action") == "")["body"]["error"]["code"]
    widget.close()


def test_a_connection_gone_mid_push_is_dropped_and_the_case_s_other_connections_still_get_the_event(
    client: Client, stack: LocalStack, opened: tuple[str, str]
) -> None:
    case_id, _ = opened
    assert stack.socket is not None
    before = set(stack.socket.connection_ids())
    gone = Widget(token(client, case_id)["url"])
    [gone_id] = wait_until("the first connection", lambda: set(stack.socket.connection_ids()) - before)  # type: ignore[union-attr]
    staying = Widget(token(client, case_id)["url"])
    stack.socket.forget(gone_id)  # lost without $disconnect: @connections answers 410 for it
    agent_says(client, case_id, "still here?")
    staying.wait(text_event("still here?"))
    dynamodb = stack.aws.dynamodb
    wait_until(
        "the gone connection's items are deleted",
        lambda: (
            not dynamodb.get_item(
                TableName=stack.table_name, Key={"pk": {"S": f"CONNECTION#{gone_id}"}, "sk": {"S": "CONNECTION"}}
            ).get("Item")
        ),
    )
    items = dynamodb.query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues={":pk": {"S": f"CASE#{case_id}"}, ":c": {"S": "CONNECTION#"}},
    )["Items"]
    assert f"CONNECTION#{gone_id}" not in {i["sk"]["S"] for i in items}
    staying.close()
    assert gone.frames == []  # it never got the event (it was gone before it was pushed)


# ---- signed webhooks ----------------------------------------------------------------------------------
def sequences(deliveries: list[Delivery]) -> list[int]:
    return [int(d.event["sequence"]) for d in deliveries if "sequence" in d.event]


def test_a_channel_webhook_500_then_200_delivers_the_event_once_signed_with_its_event_id(
    client: Client, stack: LocalStack, opened: tuple[str, str]
) -> None:
    case_id, _ = opened
    receiver = stack.webhook_receiver
    assert receiver is not None
    receiver.wait_for(lambda _: len(receiver.verified(case_id)) >= 3)  # opened, queued, agent joined
    receiver.script(case_id, [500])
    agent_says(client, case_id, "retried")
    receiver.wait_for(lambda _: any(d.event.get("text") == "retried" for d in receiver.verified(case_id)))
    tries = [d for d in receiver.for_case(case_id) if d.event.get("text") == "retried"]
    assert [d.status for d in tries] == [500, 204]
    assert tries[0].headers["webhook-id"] == tries[1].headers["webhook-id"] == tries[1].event["eventId"]
    assert tries[1].body["type"] == "AgentMessage"
    delivered = receiver.verified(case_id)
    assert sequences(delivered) == list(range(1, len(delivered) + 1))
    assert not receiver.refused


def test_no_event_of_a_case_overtakes_another_under_retries_and_other_cases_go_on(
    client: Client, stack: LocalStack
) -> None:
    receiver = stack.webhook_receiver
    assert receiver is not None
    failing, other = f"e2e-{uuid.uuid4().hex[:12]}", f"e2e-{uuid.uuid4().hex[:12]}"
    try:
        receiver.script(failing, [503, (503, {"Retry-After": "1"}), 429, 408, 500])
        for case_id in (failing, other):
            assert client.open(case_id, {"customer": {"name": "Order"}}).status_code == 201
        for text in ("a", "b", "c"):
            agent_says(client, failing, text)
        receiver.wait_for(lambda _: len(receiver.verified(other)) >= 3)
        other_done = max(d.received for d in receiver.verified(other)[:3])
        receiver.wait_for(lambda _: len(receiver.verified(failing)) >= 6, timeout=20)
        delivered = receiver.verified(failing)
        assert sequences(delivered) == list(range(1, len(delivered) + 1))  # in order, none twice, none missing
        assert [d.event["text"] for d in delivered if d.event["type"] == "AgentMessage"] == ["a", "b", "c"]
        assert other_done < delivered[0].received  # the other case did not wait for the failing one
    finally:
        for case_id in (failing, other):
            client.call("DELETE", f"/cases/{case_id}/conversation")


def refused_then_went_on(client: Client, stack: LocalStack, case_id: str, text: str) -> WebhookReceiver:
    """The channel answers 400 to the agent's `text` (given up at once), then takes the case's next event."""
    receiver = stack.webhook_receiver
    assert receiver is not None
    receiver.wait_for(lambda _: len(receiver.verified(case_id)) >= 3)  # opened, queued, agent joined
    receiver.script(case_id, [400])
    agent_says(client, case_id, text)
    agent_says(client, case_id, "next")
    receiver.wait_for(lambda _: any(d.event.get("text") == "next" for d in receiver.verified(case_id)))
    return receiver


def test_a_4xx_dead_letters_the_event_with_its_reason_and_the_case_goes_on(
    client: Client, stack: LocalStack, opened: tuple[str, str]
) -> None:
    case_id, _ = opened
    receiver = refused_then_went_on(client, stack, case_id, "refused")
    assert [d.status for d in receiver.for_case(case_id) if d.event.get("text") == "refused"] == [400]
    sqs = stack.aws.sqs
    dlq_url = stack.environment["CHANNEL_WEBHOOK_DLQ_URL"]
    dead = wait_until(
        "the refused event in the dead-letter queue",
        lambda: sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages"),
    )
    bodies = [json.loads(m["Body"]) for m in dead]
    assert [(b["caseId"], b["event"]["text"], b["reason"]) for b in bodies] == [(case_id, "refused", "HTTP 400")]


def test_the_redrive_delivers_a_dead_lettered_event_signed_once_the_channel_takes_it(
    client: Client, stack: LocalStack, opened: tuple[str, str]
) -> None:
    case_id, _ = opened
    receiver = refused_then_went_on(client, stack, case_id, "parked")
    parked = next(d.event["eventId"] for d in receiver.for_case(case_id) if d.event.get("text") == "parked")
    sqs, dlq_url = stack.aws.sqs, stack.environment["CHANNEL_WEBHOOK_DLQ_URL"]
    deliver = deliver_to(receiver.url, receiver.secret, timeout=5)

    wait_until("the parked event on the dead-letter queue", lambda: parked in listing(sqs, dlq_url))
    assert not any(d.event.get("text") == "parked" for d in receiver.verified(case_id))
    receiver.script(case_id, [503])  # the channel is not fixed yet: the event stays
    assert parked in redrive(sqs, dlq_url, deliver).left
    assert parked in listing(sqs, dlq_url)

    assert parked in redrive(sqs, dlq_url, deliver).delivered  # fixed now
    assert parked not in listing(sqs, dlq_url)
    taken = [d for d in receiver.verified(case_id) if d.event.get("text") == "parked"]
    assert len(taken) == 1 and taken[0].headers["webhook-id"] == parked == taken[0].event["eventId"]
    assert [d.status for d in receiver.for_case(case_id) if d.event.get("text") == "parked"] == [400, 503, 204]


def listing(sqs: Any, dlq_url: str) -> list[str]:
    """The dead-letter queue's events, as a dry run lists them (it delivers nothing and leaves them visible)."""
    return redrive(sqs, dlq_url, lambda _: pytest.fail("a dry run delivers nothing"), dry_run=True).delivered


def test_a_slow_channel_holds_up_neither_the_intake_nor_another_case(client: Client, stack: LocalStack) -> None:
    receiver = stack.webhook_receiver
    assert receiver is not None
    slow, quick = f"e2e-{uuid.uuid4().hex[:12]}", f"e2e-{uuid.uuid4().hex[:12]}"
    intake_ms: list[float] = []
    receiver.slow(slow, 2.5)  # each of its deliveries takes 2.5 s to be answered
    stack.api.on_request = lambda _m, path, _s, ms: intake_ms.append(ms) if path.endswith("/webhooks/8x8") else None
    try:
        for case_id in (slow, quick):
            assert client.open(case_id, {"customer": {"name": "Slow or quick"}}).status_code == 201
        agent_says(client, slow, "to a slow channel")
        receiver.wait_for(lambda _: len(receiver.verified(quick)) >= 3)
        quick_done = max(d.received for d in receiver.verified(quick)[:3])
        receiver.wait_for(lambda _: len(receiver.verified(slow)) >= 4, timeout=30)
        assert quick_done < receiver.verified(slow)[1].received  # the quick case did not queue behind the slow one
        assert intake_ms and max(intake_ms) < 2000, intake_ms  # 8x8's webhooks were answered without waiting
    finally:
        stack.api.on_request = None
        receiver.slow(slow, 0)
        for case_id in (slow, quick):
            client.call("DELETE", f"/cases/{case_id}/conversation")
