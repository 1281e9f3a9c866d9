"""Delivery and the business API at their edges: dead letters ahead of SQS, the case outbox, the time budget,
clock skew, reopening with customer data, blank text and reused clientMessageIds.

Each test was written to fail on the code before its fix. The real
handlers get API Gateway REST and SQS events, AWS is moto (resources from template.yaml), 8x8 is the fake client.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from casebridge.errors import ContactCenterError, ContactCenterUnavailable
from casebridge.outbound_queue import OutboundQueue
from casebridge.services import set_services
from scripts.redrive import redrive
from tests.support.aws import aws_client, load_template, template_properties
from tests.support.events import EVENT_EXTRAS, webhook_body
from tests.support.fakes import FakeContactCenter
from tests.support.lambdas import ScriptedTime
from tests.support.paths import FUNCTIONS_DIR
from tests.support.queue import message_record, process, receive, sqs_batch
from tests.support.samples import (
    CASE_ID,
    CONVERSATION_ID,
    Answer,
    accept_messages,
    invoke,
    load_event,
    post_message,
    sample_api_event,
    sample_webhook_event,
)
from tests.support.signing import WebhookSigner


# ---- helpers -------------------------------------------------------------------------------------
def open_case(functions: SimpleNamespace, body: Any = ..., case_id: str = CASE_ID) -> Answer:
    return invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=case_id, body=body))


def leave(functions: SimpleNamespace, case_id: str = CASE_ID) -> Answer:
    return invoke(functions.lifecycle, sample_api_event("customer_leaves.json", case_id=case_id))


def get_case(functions: SimpleNamespace, case_id: str = CASE_ID) -> Answer:
    return invoke(functions.lifecycle, sample_api_event("get_case.json", case_id=case_id))


def body_ids(batch: dict[str, Any]) -> dict[str, str]:
    """casebridge messageId -> SQS messageId."""
    return {json.loads(r["body"])["messageId"]: r["messageId"] for r in batch["Records"]}


def with_settings(services: Any, **updates: Any) -> Any:
    changed = replace(services, settings=dataclasses.replace(services.settings, **updates))
    set_services(changed)
    return changed


def fail_publishes(services: Any, *outcomes: bool) -> None:
    """EventBridge answers the next PutEvents calls as scripted: False refuses every entry (as PutEvents reports
    a failure), True lets the call through; after the script, every call goes through."""
    script = list(outcomes)

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not script or script.pop(0):
            return None
        body = params["body"]
        entries = json.loads(body.decode() if isinstance(body, bytes) else body)["Entries"]
        failed = [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} for _ in entries]
        response = AWSResponse("https://events.test", 200, HTTPHeaders(), None)
        return response, {"FailedEntryCount": len(failed), "Entries": failed}

    services.publisher.client.meta.events.register_first("before-call.events.PutEvents", answer)


def types(event_bus: Any) -> list[str]:
    return sorted(e["detail-type"] for e in event_bus.published())


@pytest.fixture
def metrics_seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from casebridge import observability  # noqa: PLC0415 - after the environment is set

    seen: list[str] = []
    monkeypatch.setattr(observability.metrics, "add_metric", lambda name, **_: seen.append(name))
    return seen


# ---- item 1: nothing reaches the DLQ without MessageFailed and a failed record ---------------------------
def test_template_keeps_every_sender_dead_letter_ahead_of_sqs() -> None:
    """Item 1: BatchSize x MaxSendAttempts (its MaxValue) < maxReceiveCount, and the sender is told that count."""
    template = load_template()
    max_receive = int(template_properties("OutboundQueue")["RedrivePolicy"]["maxReceiveCount"])
    sender = template_properties("OutboundSenderFunction")
    batch_size = int(sender["Events"]["OutboundQueue"]["Properties"]["BatchSize"])
    max_attempts = int(template["Parameters"]["MaxSendAttempts"]["MaxValue"])
    assert batch_size * max_attempts < max_receive
    assert int(sender["Environment"]["Variables"]["OUTBOUND_MAX_RECEIVE_COUNT"]) == max_receive


@pytest.fixture
def tight_queue(services: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, Any]]:
    """An outbound queue pair whose redrive policy moves a message after 3 receives (moto enforces it, as SQS
    does), with the sender told so: the receive limit is reached in a few rounds."""
    sqs = aws_client("sqs")
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "120"}
    dlq = sqs.create_queue(QueueName="tight-dlq.fifo", Attributes=fifo)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive_policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    queue = sqs.create_queue(QueueName="tight.fifo", Attributes={**fifo, "RedrivePolicy": redrive_policy})["QueueUrl"]
    monkeypatch.setenv("OUTBOUND_MAX_RECEIVE_COUNT", "3")
    wired = with_settings(replace(services, queue=OutboundQueue(queue, dlq)), outbound_max_receive_count=3)
    yield queue, dlq, wired


def test_held_back_messages_reaching_the_receive_limit_are_dead_lettered_by_the_sender(
    functions: SimpleNamespace,
    tight_queue: tuple[str, str, Any],
    fake_8x8: FakeContactCenter,
    event_bus: Any,
) -> None:
    """Item 1: the head of a case keeps failing (8x8 down); the message behind it is received at every attempt
    of the head without being attempted. Before SQS's maxReceiveCount moves anything silently, the sender
    dead-letters both itself: DLQ, `failed` record, MessageFailed each."""
    queue, dlq, _ = tight_queue
    assert open_case(functions).status == 201
    head, held = accept_messages(functions.outbound, "head", "held back")
    event_bus.published()
    fake_8x8.errors["send"] = [ContactCenterUnavailable("8x8 answered 503", upstream_status=503) for _ in range(20)]
    sqs = aws_client("sqs")
    for _ in range(6):  # more rounds than the receive limit
        messages = receive(queue)
        if not messages:
            break
        failed = set(process(functions, sqs_batch(messages)))
        for m in messages:  # what was given back comes again at once (the backoff is not the subject)
            if m["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert receive(queue) == []
    dead = sorted(json.loads(m["Body"])["messageId"] for m in receive(dlq))
    assert dead == sorted([head, held])
    for message_id in (head, held):
        record = message_record(CASE_ID, message_id)
        assert record is not None and record["status"]["S"] == "failed", message_id
    published = event_bus.published()
    assert sorted(e["detail"]["messageId"] for e in published if e["detail-type"] == "MessageFailed") == sorted(
        [head, held]
    )
    assert fake_8x8.sent == [], "the held-back message was never sent"


def test_a_held_back_message_below_the_receive_limit_just_waits(
    functions: SimpleNamespace, tight_queue: tuple[str, str, Any], fake_8x8: FakeContactCenter
) -> None:
    """Item 1, the other side: below the limit the held-back message goes back to the queue untouched."""
    queue, dlq, _ = tight_queue
    assert open_case(functions).status == 201
    head, held = accept_messages(functions.outbound, "head", "held back")
    fake_8x8.errors["send"] = [ContactCenterUnavailable("8x8 answered 503", upstream_status=503)]
    batch = sqs_batch(receive(queue))
    ids = body_ids(batch)
    assert set(process(functions, batch)) == {ids[head], ids[held]}
    assert message_record(CASE_ID, held) is None
    assert receive(dlq) == []


# ---- item 2: every timeline event of the lifecycle path reaches the bus -----------------------------------
@pytest.mark.parametrize("follow_up", ["retry", "get_case"])
def test_conversation_opened_recorded_but_not_published_is_published_by_the_next_request(
    functions: SimpleNamespace, services: Any, event_bus: Any, follow_up: str
) -> None:
    """Item 2: EventBridge fails while the case opens; the retry (or any later request) publishes it."""
    fail_publishes(services, False)
    first = open_case(functions)
    assert first.status >= 500, first.raw
    assert types(event_bus) == []
    again = open_case(functions) if follow_up == "retry" else get_case(functions)
    assert again.status == 200, again.raw
    assert types(event_bus) == ["ConversationOpened"]


@pytest.mark.parametrize("follow_up", ["retry", "get_case"])
def test_customer_left_recorded_but_not_published_is_published_by_the_next_request(
    functions: SimpleNamespace, services: Any, event_bus: Any, fake_8x8: FakeContactCenter, follow_up: str
) -> None:
    """Item 2: EventBridge fails while the customer leaves; the retry (or GET /cases/{id}) publishes it."""
    assert open_case(functions).status == 201
    event_bus.published()
    fail_publishes(services, False)
    assert leave(functions).status >= 500
    again = leave(functions) if follow_up == "retry" else get_case(functions)
    assert again.status == 200 and again.body["state"] == "closed", again.raw
    assert types(event_bus) == ["CustomerLeft"]
    assert fake_8x8.left == [CONVERSATION_ID] * len(fake_8x8.left) and fake_8x8.left


def test_early_events_adopted_on_open_reach_the_bus_when_their_publish_failed(
    functions: SimpleNamespace, services: Any, event_bus: Any, webhook_signer: WebhookSigner
) -> None:
    """Item 2: QUEUED and AGENT_JOINED arrive before the case knows its conversation; the bus fails while they
    are taken into the case. Both end on the case (state with_agent) and on the bus after the next request."""
    now = int(time.time() * 1000)
    for event_type, offset in (("QUEUED", 0), ("AGENT_JOINED", 1000)):
        body = webhook_body(event_type, CONVERSATION_ID, now + offset, **EVENT_EXTRAS[event_type])
        answer = invoke(
            functions.webhook, sample_webhook_event("chat-api-v2/webhook_queued.json", webhook_signer, body=body)
        )
        assert answer.status == 200 and answer.body["status"] == "kept", answer.raw
    fail_publishes(services, True, False)  # ConversationOpened goes through; the adopted events fail
    first = open_case(functions, body='{"customer": {"name": "Ada"}}')  # no history: its events would publish too
    assert first.status in (201, 500, 502, 503), first.raw
    view = get_case(functions)
    assert view.status == 200, view.raw
    assert view.body["state"] == "with_agent"
    assert types(event_bus) == ["AgentJoined", "ConversationOpened", "Queued"]
    assert services.store.early_events(CONVERSATION_ID) == []


# ---- item 3: a dead-lettered message is sent again only after an operator's redrive -----------------------
def test_message_failed_publish_failing_does_not_resend_the_message_and_a_redrive_does(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any, event_bus: Any
) -> None:
    """Item 3: 8x8 refuses the message (dead letter) and EventBridge refuses its MessageFailed. SQS delivers the
    message again: it only publishes MessageFailed, it does not send. An operator's redrive sends it once."""
    assert open_case(functions).status == 201
    [message_id] = accept_messages(functions.outbound, "refused once")
    event_bus.published()
    fake_8x8.errors["send"] = [ContactCenterError("8x8 answered 400", upstream_status=400, upstream_code="BAD")]
    fail_publishes(services, False)
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    assert process(functions, batch) == list(body_ids(batch).values()), "the failed publish gives it back"
    [dead] = receive(fifo_queues.dead_letter_url)
    sqs = aws_client("sqs")
    sqs.change_message_visibility(
        QueueUrl=fifo_queues.dead_letter_url, ReceiptHandle=dead["ReceiptHandle"], VisibilityTimeout=0
    )
    record = message_record(CASE_ID, message_id)
    assert record is not None and record["status"]["S"] == "failed"
    assert event_bus.published() == []

    batch["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"  # SQS's redelivery of the same message
    assert process(functions, batch) == []
    assert fake_8x8.sent == [], "a dead-lettered message is not sent again by a queue redelivery"
    sqs.delete_message(QueueUrl=fifo_queues.outbound_url, ReceiptHandle=batch["Records"][0]["receiptHandle"])
    record = message_record(CASE_ID, message_id)
    assert record is not None and (record["status"]["S"], record["redrive"]["N"]) == ("failed", "0")
    [failed] = event_bus.published()
    assert (failed["detail-type"], failed["detail"]["messageId"]) == ("MessageFailed", message_id)

    [still] = receive(fifo_queues.dead_letter_url)  # once: the redelivery did not dead-letter it again
    sqs.change_message_visibility(
        QueueUrl=fifo_queues.dead_letter_url, ReceiptHandle=still["ReceiptHandle"], VisibilityTimeout=0
    )
    assert redrive(sqs, fifo_queues.dead_letter_url, fifo_queues.outbound_url, limit=1) == 1
    assert process(functions, sqs_batch(receive(fifo_queues.outbound_url))) == []
    assert fake_8x8.sent == [(CONVERSATION_ID, "refused once", "user")]
    record = message_record(CASE_ID, message_id)
    assert record is not None and (record["status"]["S"], record["redrive"]["N"]) == ("sent", "1")


# ---- item 5: no new send when the invocation cannot finish it -------------------------------------------
def test_no_message_is_taken_when_the_time_left_cannot_cover_one_send(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    """Item 5: with less time left than one send needs, the whole batch goes back untouched: no 8x8 call, no
    record, no visibility change."""
    assert open_case(functions).status == 201
    ids = accept_messages(functions.outbound, "one", "two")
    ids += accept_messages(functions.outbound, "other case", case_id="case-2002")
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    changes: list[dict[str, Any]] = []
    services.queue.client.meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility", lambda params, **_: changes.append(dict(params))
    )
    given_back = process(functions, batch, ScriptedTime(remaining=(1_000,)))
    assert sorted(given_back) == sorted(body_ids(batch).values())
    assert fake_8x8.sent == [] and len(fake_8x8.created) == 1, "no 8x8 call"
    cases = [CASE_ID, CASE_ID, "case-2002"]
    assert [message_record(case, m) for case, m in zip(cases, ids, strict=True)] == [None] * 3
    assert changes == []


def test_the_batch_stops_when_the_time_left_runs_short(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    """Item 5: plenty of time for the first send, then not enough: the rest goes back to the queue."""
    assert open_case(functions).status == 201
    _, second, third = accept_messages(functions.outbound, "one", "two", "three")
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    ids = body_ids(batch)
    given_back = process(functions, batch, ScriptedTime(remaining=(20_000, 1_000)))
    assert [text for _, text, _ in fake_8x8.sent] == ["one"]
    assert sorted(given_back) == sorted([ids[second], ids[third]])
    assert message_record(CASE_ID, second) is None and message_record(CASE_ID, third) is None


# ---- item 6: one clock per source -------------------------------------------------------------------------
def skew_lambda_clock(monkeypatch: pytest.MonkeyPatch, offset_ms: int) -> None:
    """The connector's clock runs `offset_ms` away from 8x8's (wherever casebridge reads it)."""

    def skewed() -> int:
        return int(time.time() * 1000) + offset_ms

    for name, module in list(sys.modules.items()):
        if name.startswith("casebridge") and callable(getattr(module, "now_ms", None)):
            monkeypatch.setattr(module, "now_ms", skewed)


def deliver_event(
    functions: SimpleNamespace, signer: WebhookSigner, event_type: str, timestamp: int, event_id: str | None = None
) -> Answer:
    body = webhook_body(event_type, CONVERSATION_ID, timestamp, **EVENT_EXTRAS[event_type])
    event = sample_webhook_event(
        "chat-api-v2/webhook_queued.json", signer, body=body, event_id=event_id or str(uuid.uuid4())
    )
    answer = invoke(functions.webhook, event)
    assert answer.status == 200, answer.raw
    return answer


def test_real_reopen_is_not_ignored_when_the_lambda_clock_runs_ahead(
    functions: SimpleNamespace,
    services: Any,
    fake_8x8: FakeContactCenter,
    fifo_queues: Any,
    webhook_signer: WebhookSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 6: the customer leaves with the Lambda clock an hour ahead of 8x8's, then writes again; 8x8's new
    QUEUED (8x8's time, earlier than the Lambda's 'left' time) reopens the case."""
    t0 = int(time.time() * 1000)
    assert open_case(functions).status == 201
    deliver_event(functions, webhook_signer, "QUEUED", t0)
    deliver_event(functions, webhook_signer, "AGENT_JOINED", t0 + 1_000)
    skew_lambda_clock(monkeypatch, 3_600_000)
    assert leave(functions).body["state"] == "closed"
    accept_messages(functions.outbound, "I am back")
    assert process(functions, sqs_batch(receive(fifo_queues.outbound_url))) == []
    assert [text for _, text, _ in fake_8x8.sent] == ["I am back"]
    deliver_event(functions, webhook_signer, "QUEUED", t0 + 60_000)
    assert get_case(functions).body["state"] == "queued"


def test_late_event_does_not_reopen_a_closed_case_when_the_lambda_clock_runs_behind(
    functions: SimpleNamespace,
    services: Any,
    webhook_signer: WebhookSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 6: the customer leaves with the Lambda clock an hour behind 8x8's; events 8x8 stamped after the
    Lambda's 'left' time (a late QUEUED, the agent leaving) do not reopen the closed case."""
    t0 = int(time.time() * 1000)
    assert open_case(functions).status == 201
    deliver_event(functions, webhook_signer, "QUEUED", t0)
    deliver_event(functions, webhook_signer, "AGENT_JOINED", t0 + 1_000)
    skew_lambda_clock(monkeypatch, -3_600_000)
    assert leave(functions).body["state"] == "closed"
    deliver_event(functions, webhook_signer, "AGENT_LEFT", t0 + 2_000)
    deliver_event(functions, webhook_signer, "QUEUED", t0 + 3_000)
    view = get_case(functions).body
    assert (view["state"], view["agent"], view["transferPending"]) == ("closed", None, False)


# ---- item 7: the open request's data is never dropped silently ------------------------------------------
@pytest.fixture
def opened_by_a_message(
    functions: SimpleNamespace, services: Any, fifo_queues: Any, fake_8x8: FakeContactCenter
) -> Any:
    """The case's conversation was opened by its first message (no customer data, no history)."""
    accept_messages(functions.outbound, "hello, anyone?")
    assert process(functions, sqs_batch(receive(fifo_queues.outbound_url))) == []
    assert len(fake_8x8.created) == 1 and fake_8x8.created[0]["history"] == []
    return services


def test_open_with_history_after_a_message_opened_the_case_is_409(
    functions: SimpleNamespace, opened_by_a_message: Any, fake_8x8: FakeContactCenter
) -> None:
    """Item 7: 8x8 can take history only when the conversation is created: say so, do not answer 200."""
    answer = open_case(functions)  # the sample: customer data and history
    assert answer.status == 409, answer.raw
    assert "already exists" in answer.body["error"]["message"] and "history" in answer.body["error"]["message"]
    assert len(fake_8x8.created) == 1 and fake_8x8.customer_updates == []


def test_customer_data_after_a_message_opened_the_case_reaches_8x8_on_the_gateway(
    functions: SimpleNamespace, opened_by_a_message: Any, fake_8x8: FakeContactCenter
) -> None:
    """Item 7, Chat Gateway: the conversation's user data is updated (PATCH user); an identical retry does not
    update again."""
    fake_8x8.api = "chat-gateway-v1"
    customer = load_event("open_conversation.json")["body"]
    body = {"customer": json.loads(customer)["customer"]}
    answer = open_case(functions, body=body)
    assert answer.status == 200, answer.raw
    [(conversation_id, sent)] = fake_8x8.customer_updates
    assert conversation_id == CONVERSATION_ID
    assert (sent["caseId"], sent["name"], sent["email"]) == (CASE_ID, "Ada Lovelace", "ada@example.com")
    assert open_case(functions, body=body).status == 200
    assert len(fake_8x8.customer_updates) == 1, "the identical retry changes nothing"


def test_customer_data_after_a_message_opened_the_case_is_409_on_chat_api_v2(
    functions: SimpleNamespace, opened_by_a_message: Any, real_services: Any, fake_8x8: FakeContactCenter
) -> None:
    """Item 7, Chat API v2: it cannot change an open conversation's customer (the real client says so)."""
    fake_8x8.update_customer = real_services.contact_center.update_customer  # type: ignore[method-assign]
    customer = json.loads(load_event("open_conversation.json")["body"])["customer"]
    answer = open_case(functions, body={"customer": customer})
    assert answer.status == 409, answer.raw
    assert "already exists" in answer.body["error"]["message"]


def test_identical_retry_of_the_opening_request_is_200_and_another_request_is_409(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    """Item 7: the request that opened the conversation may be retried (200, nothing sent again); a different
    history for the same case is refused."""
    assert open_case(functions).status == 201
    again = open_case(functions)
    assert again.status == 200 and again.body["conversationId"] == CONVERSATION_ID, again.raw
    other = json.loads(load_event("open_conversation.json")["body"])
    other["history"] = [{"authorType": "bot", "text": "A different transcript"}]
    assert open_case(functions, body=other).status == 409
    assert len(fake_8x8.created) == 1 and fake_8x8.customer_updates == []


# ---- item 14: whitespace-only text ------------------------------------------------------------------------
@pytest.mark.parametrize("text", [" ", "   \n\t ", "\u00a0\u2003"])
def test_whitespace_only_message_text_is_400_naming_the_field(
    functions: SimpleNamespace, services: Any, fifo_queues: Any, text: str
) -> None:
    """Item 14: 8x8 would refuse it later (message → DLQ)."""
    answer = post_message(functions.outbound, body={"text": text})
    assert answer.status == 400, answer.raw
    assert [d["field"] for d in answer.body["error"]["details"]] == ["text"]
    assert answer.body["error"]["message"] == "text must contain at least one non-space character"
    assert receive(fifo_queues.outbound_url) == []


def test_whitespace_only_history_text_is_400_naming_the_item(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    """Item 14: 8x8 would refuse it later (the open → 502)."""
    body = {"history": [{"authorType": "bot", "text": "Hello"}, {"authorType": "user", "text": " \n "}]}
    answer = open_case(functions, body=body)
    assert answer.status == 400, answer.raw
    assert [d["field"] for d in answer.body["error"]["details"]] == ["history.1.text"]
    assert answer.body["error"]["message"] == "history.1.text must contain at least one non-space character"
    assert fake_8x8.created == []


# ---- item 16: a clientMessageId reused for another text -----------------------------------------------
def test_client_message_id_reused_with_another_text_is_409_and_the_same_text_is_one_delivery(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    """Item 16: like a payment API's idempotency key reused with other parameters."""
    assert open_case(functions).status == 201
    first = post_message(functions.outbound, body={"text": "first text", "clientMessageId": "m-1"})
    same = post_message(functions.outbound, body={"text": "first text", "clientMessageId": "m-1"})
    other = post_message(functions.outbound, body={"text": "another text", "clientMessageId": "m-1"})
    assert (first.status, same.status) == (202, 202)
    assert same.body["messageId"] == first.body["messageId"]
    assert other.status == 409, other.raw
    assert other.body["error"]["code"] == "ClientMessageIdReused"
    assert process(functions, sqs_batch(receive(fifo_queues.outbound_url))) == []
    assert fake_8x8.sent == [(CONVERSATION_ID, "first text", "user")]


# ---- item 11 (X-Ray half): no handler's response goes into a trace -------------------------------------
def test_no_function_traces_its_response() -> None:
    """Item 11: powertools' tracer stores a handler's response in X-Ray unless told not to; the responses hold
    agent text and customer data. Every tracer decorator in the functions says capture_response=False."""
    decorators: list[tuple[str, bool]] = []  # (function, response capture off)
    for app in sorted(FUNCTIONS_DIR.glob("*/app.py")):
        for node in ast.walk(ast.parse(app.read_text())):
            for decorator in node.decorator_list if isinstance(node, ast.FunctionDef) else []:
                call = decorator if isinstance(decorator, ast.Call) else None
                target = call.func if call else decorator
                if isinstance(target, ast.Attribute) and target.attr in ("capture_lambda_handler", "capture_method"):
                    flag = next((k.value for k in call.keywords if k.arg == "capture_response"), None) if call else None
                    decorators.append((app.parent.name, isinstance(flag, ast.Constant) and flag.value is False))
    assert {name for name, _ in decorators} >= {"conversation_lifecycle", "outbound_sender", "webhook_intake"}
    assert all(off for _, off in decorators), decorators
