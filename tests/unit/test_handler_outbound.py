"""functions/outbound_sender: messages accepted onto the case's FIFO group, then delivered from SQS batches."""

from __future__ import annotations

import copy
import json
import random
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
import responses

from casebridge.errors import ContactCenterError, ContactCenterUnavailable
from casebridge.messages import backoff_seconds
from casebridge.services import set_services
from casebridge.store import MessageRecord, MessageStatus
from tests.support.aws import aws_client
from tests.support.fakes import FakeContactCenter
from tests.support.lambdas import LambdaContext
from tests.support.samples import CASE_ID, accept_messages, invoke, load_event, post_message, sample_api_event

BASE = "https://api.8x8.test"
TENANT_PATH = f"{BASE}/vcc/us/chat/v2/tenant/acme-tenant"


def open_case(functions: SimpleNamespace, case_id: str = CASE_ID) -> str:
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=case_id))
    assert answer.status == 201, answer.raw
    conversation_id: str = answer.body["conversationId"]
    return conversation_id


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    answer = aws_client("sqs").receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=120,
    )
    return [dict(m) for m in answer.get("Messages", [])]


def batch_from_queue(queue_url: str) -> dict[str, Any]:
    """The SQS event Lambda would get for the messages now on the queue (sample record, real handles)."""
    template = load_event("sqs_outbound_batch.json")["Records"][0]
    records = []
    for message in receive_all(queue_url):
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
        )
        record["attributes"].update(message["Attributes"])
        records.append(record)
    return {"Records": records}


def process(functions: SimpleNamespace, batch: dict[str, Any]) -> list[str]:
    """Run a batch; returns the message ids reported as failed."""
    result = functions.outbound.lambda_handler(batch, LambdaContext())
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


class OneMessage(NamedTuple):
    conversation_id: str
    message_id: str
    batch: dict[str, Any]


def one_message(functions: SimpleNamespace, queue_url: str, text: str, receive_count: int | None = None) -> OneMessage:
    """The sample case opened and one message accepted on it, in the batch the sender gets from the queue;
    `receive_count` replaces SQS's ApproximateReceiveCount (how many times the queue has handed it over)."""
    conversation_id = open_case(functions)
    [message_id] = accept_messages(functions.outbound, text)
    batch = batch_from_queue(queue_url)
    if receive_count is not None:
        batch["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return OneMessage(conversation_id, message_id, batch)


def record_earlier_attempts(services: Any, message: OneMessage, attempts: int) -> None:
    """Earlier attempts are counted on the message's record (not by SQS's receive count)."""
    record = MessageRecord(message.message_id, MessageStatus.PENDING, attempts, 0)
    services.store.record_message(CASE_ID, record, message.conversation_id)


def visibility_changes(services: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    services.queue.client.meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility", lambda params, **_: seen.append(dict(params))
    )
    return seen


# ---- the API: accept -----------------------------------------------------------------------------
def test_post_message_is_accepted_onto_the_cases_fifo_group(
    functions: SimpleNamespace, services: Any, fifo_queues: Any
) -> None:
    answer = post_message(functions.outbound)
    assert answer.status == 202, answer.raw
    assert answer.body["status"] == "accepted" and answer.body["caseId"] == CASE_ID
    [message] = receive_all(fifo_queues.outbound_url)
    assert message["Attributes"]["MessageGroupId"] == CASE_ID
    assert message["Attributes"]["MessageDeduplicationId"] == answer.body["messageId"]
    body = json.loads(message["Body"])
    assert {k: body[k] for k in ("caseId", "messageId", "text", "authorType")} == {
        "caseId": CASE_ID,
        "messageId": answer.body["messageId"],
        "text": "Any news on my order?",
        "authorType": "user",
    }


def test_client_message_id_makes_accept_idempotent(functions: SimpleNamespace, services: Any, fifo_queues: Any) -> None:
    first, second = post_message(functions.outbound), post_message(functions.outbound)
    assert first.body["messageId"] == second.body["messageId"]
    assert len(receive_all(fifo_queues.outbound_url)) == 1, "the FIFO deduplication id drops the repeat"
    other_case = post_message(functions.outbound, case_id="case-2002")
    assert other_case.body["messageId"] != first.body["messageId"]


def test_messages_without_client_id_get_distinct_ids(functions: SimpleNamespace, services: Any) -> None:
    a = post_message(functions.outbound, body={"text": "one"})
    b = post_message(functions.outbound, body={"text": "one"})
    assert a.body["messageId"] != b.body["messageId"]


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x" * 4097},
        {"text": ""},
        {},
        {"text": "hi", "authorType": "agent"},
        {"text": "hi", "clientMessageId": "has space"},
        {"text": "hi", "extra": 1},
        "{not json",
        None,
    ],
)
def test_invalid_message_is_400_and_nothing_is_queued(
    functions: SimpleNamespace, services: Any, fifo_queues: Any, body: Any
) -> None:
    answer = post_message(functions.outbound, body=body)
    assert answer.status == 400, answer.raw
    assert answer.body["error"]["code"] == "InvalidRequest"
    assert receive_all(fifo_queues.outbound_url) == []


def test_bad_case_id_is_400(functions: SimpleNamespace, services: Any) -> None:
    answer = post_message(functions.outbound, case_id="bad!id")
    assert answer.status == 400 and answer.body["error"]["code"] == "InvalidRequest"


def test_message_body_too_large_is_413(functions: SimpleNamespace, services: Any) -> None:
    answer = post_message(functions.outbound, body={"text": "x" * 300_000})
    assert answer.status == 413 and answer.body["error"]["code"] == "PayloadTooLarge"


# ---- the queue: deliver --------------------------------------------------------------------------
def test_sample_batch_is_delivered_in_order(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    fake_8x8.conversation_ids = ["conv-1001", "conv-2002"]
    open_case(functions)
    assert process(functions, load_event("sqs_outbound_batch.json")) == []
    assert fake_8x8.sent == [
        ("conv-1001", "Any news on my order?", "user"),
        ("conv-1001", "I am home after 5 pm.", "user"),
        ("conv-2002", "Please cancel my subscription.", "user"),
    ]
    assert [c["customer"]["caseId"] for c in fake_8x8.created] == [CASE_ID, "case-2002"], "case-2002 opened on demand"


def test_duplicate_sqs_delivery_is_not_sent_again(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    fake_8x8.conversation_ids = ["conv-1001", "conv-2002"]
    batch = load_event("sqs_outbound_batch.json")
    assert process(functions, batch) == []
    assert process(functions, copy.deepcopy(batch)) == []
    assert len(fake_8x8.sent) == 3


def test_accepted_messages_flow_through_the_queue(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    open_case(functions)
    accept_messages(functions.outbound, "first", "second", "third")
    assert process(functions, batch_from_queue(fifo_queues.outbound_url)) == []
    assert [text for _, text, _ in fake_8x8.sent] == ["first", "second", "third"]


def test_retryable_failure_defers_with_backoff_and_holds_the_group(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    open_case(functions)
    fake_8x8.conversation_ids = ["conv-2002"]
    first, second = accept_messages(functions.outbound, "first", "second")
    [other] = accept_messages(functions.outbound, "other case", case_id="case-2002")
    fake_8x8.errors["send"] = [ContactCenterUnavailable("8x8 answered 503", upstream_status=503)]
    changes = visibility_changes(services)
    batch = batch_from_queue(fifo_queues.outbound_url)
    ids = {json.loads(r["body"])["messageId"]: r["messageId"] for r in batch["Records"]}
    failed = process(functions, batch)
    assert set(failed) == {ids[first], ids[second]}, "the failed message and the rest of its group come back"
    assert ids[other] not in failed
    assert [text for _, text, _ in fake_8x8.sent] == ["other case"]
    [change] = changes
    ceiling = services.settings.retry_base_seconds  # first attempt: base * 2^0
    assert 0 <= change["VisibilityTimeout"] <= ceiling
    receipt = next(r["receiptHandle"] for r in batch["Records"] if r["messageId"] == ids[first])
    assert change["ReceiptHandle"] == receipt


def test_backoff_grows_with_the_receive_count(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    queued = one_message(functions, fifo_queues.outbound_url, "first", receive_count=5)
    fake_8x8.errors["send"] = [ContactCenterUnavailable("boom", upstream_status=500)]
    changes = visibility_changes(services)
    random.seed(7)
    assert len(process(functions, queued.batch)) == 1
    assert 0 <= changes[0]["VisibilityTimeout"] <= 2.0 * 2**4


def test_retry_after_from_8x8_is_honoured(
    functions: SimpleNamespace, real_services: Any, fifo_queues: Any, event_bus: Any
) -> None:
    """Through the real Chat API v2 client: 8x8's 429 Retry-After becomes the message's visibility delay."""
    set_services(real_services)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/oauth/v2/token", json={"access_token": "tok", "expires_in": "3600"})
        rsps.post(f"{TENANT_PATH}/conversations", status=202, json={"conversationId": "conv-real"})
        rsps.post(f"{TENANT_PATH}/conversations/conv-real/messages", status=429, headers={"Retry-After": "37"})
        open_case(functions)
        accept_messages(functions.outbound, "hello")
        changes = visibility_changes(real_services)
        batch = batch_from_queue(fifo_queues.outbound_url)
        assert len(process(functions, batch)) == 1
    assert [c["VisibilityTimeout"] for c in changes] == [37]


def test_non_retryable_failure_goes_to_the_dlq_with_message_failed(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any, event_bus: Any
) -> None:
    _, message_id, batch = one_message(functions, fifo_queues.outbound_url, "rejected text")
    event_bus.published()
    fake_8x8.errors["send"] = [ContactCenterError("8x8 answered 400", upstream_status=400, upstream_code="BAD")]
    changes = visibility_changes(services)
    assert process(functions, batch) == [], "done with: not retried by SQS"
    assert changes == []
    [dead] = receive_all(fifo_queues.dead_letter_url)
    assert json.loads(dead["Body"])["messageId"] == message_id
    assert "400" in dead["MessageAttributes"]["reason"]["StringValue"]
    assert "BAD" in dead["MessageAttributes"]["reason"]["StringValue"]
    [failed] = event_bus.published()
    assert failed["detail-type"] == "MessageFailed"
    assert failed["detail"]["messageId"] == message_id and failed["detail"]["attempts"] == 1
    _, record = services.store.lookup_for_delivery(CASE_ID, message_id)
    assert record is not None and record.status == "failed"
    answer = invoke(functions.lifecycle, sample_api_event("case_events.json"))
    assert answer.status == 200, answer.raw  # numbers read back from DynamoDB (Decimal) must serialise
    failed_entry = answer.body["events"][-1]
    assert failed_entry["type"] == "MessageFailed"
    assert (failed_entry["attempts"], failed_entry["ambiguousAttempts"]) == (1, 0)


def test_budget_exhausted_goes_to_the_dlq(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any, event_bus: Any
) -> None:
    queued = one_message(functions, fifo_queues.outbound_url, "never delivered")
    event_bus.published()
    record_earlier_attempts(services, queued, services.settings.max_send_attempts - 1)
    fake_8x8.errors["send"] = [ContactCenterUnavailable("8x8 answered 503", upstream_status=503)]
    changes = visibility_changes(services)
    assert process(functions, queued.batch) == []
    assert changes == []
    [dead] = receive_all(fifo_queues.dead_letter_url)
    assert json.loads(dead["Body"])["messageId"] == queued.message_id
    [failed] = event_bus.published()
    assert failed["detail-type"] == "MessageFailed"
    assert failed["detail"]["attempts"] == services.settings.max_send_attempts


def test_one_attempt_below_the_budget_is_still_retried(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    queued = one_message(functions, fifo_queues.outbound_url, "almost")
    record_earlier_attempts(services, queued, services.settings.max_send_attempts - 2)
    fake_8x8.errors["send"] = [ContactCenterUnavailable("503", upstream_status=503)]
    assert len(process(functions, queued.batch)) == 1
    assert receive_all(fifo_queues.dead_letter_url) == []


def test_receives_without_an_attempt_do_not_spend_the_budget(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    """A message held back behind a failing one of its case is received again without being attempted."""
    received = services.settings.max_send_attempts + 3
    queued = one_message(functions, fifo_queues.outbound_url, "held back", receive_count=received)
    fake_8x8.errors["send"] = [ContactCenterUnavailable("503", upstream_status=503)]
    assert len(process(functions, queued.batch)) == 1, "first real attempt: deferred, not dead-lettered"
    assert receive_all(fifo_queues.dead_letter_url) == []


def test_ambiguous_failure_is_counted_then_delivered(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    _, message_id, batch = one_message(functions, fifo_queues.outbound_url, "maybe twice")
    fake_8x8.errors["send"] = [ContactCenterUnavailable("read timeout", ambiguous=True)]
    assert len(process(functions, batch)) == 1
    _, pending = services.store.lookup_for_delivery(CASE_ID, message_id)
    assert pending is not None and (pending.status, pending.ambiguous_attempts) == ("pending", 1)
    batch["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    assert process(functions, batch) == []
    _, sent = services.store.lookup_for_delivery(CASE_ID, message_id)
    assert sent is not None and (sent.status, sent.attempts, sent.ambiguous_attempts) == ("sent", 2, 1)


def test_the_api_and_the_queue_share_one_function(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    """An API event is never mistaken for a batch, and a batch never for an API event."""
    fake_8x8.conversation_ids = ["conv-1001", "conv-2002"]
    assert post_message(functions.outbound).status == 202
    assert process(functions, load_event("sqs_outbound_batch.json")) == []


@pytest.mark.parametrize("attempt", [1, 2, 3, 8, 20])
def test_backoff_is_full_jitter_under_a_capped_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
    delays = [backoff_seconds(attempt, 2.0, 300.0, rng) for _ in range(200)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2, "full jitter spreads over the whole range"
