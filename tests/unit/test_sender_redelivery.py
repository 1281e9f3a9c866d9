"""The sender and the queue around it: every dead-lettering reaches the dead-letter queue, a message moved back
by any tool is delivered, one unreadable body does not hold up its batch, and no delivery starts that the
invocation's time cannot cover.

The real handler gets the SQS events Lambda would build from moto's queues (template.yaml's attributes; moto
enforces FIFO deduplication over five minutes as SQS does); 8x8 is the fake client.
"""

from __future__ import annotations

import json
from dataclasses import fields
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.errors import ContactCenterError
from casebridge.outbound_queue import OutboundMessage
from scripts.redrive import redrive
from tests.support.aws import aws_client, load_template, template_properties
from tests.support.fakes import FakeContactCenter
from tests.support.lambdas import ScriptedTime
from tests.support.queue import (
    console_redrive,
    deduplicate_like_sqs,
    drain,
    message_record,
    process,
    receive,
    sqs_batch,
)
from tests.support.samples import CASE_ID, CONVERSATION_ID, accept_messages, invoke, sample_api_event


@pytest.fixture(autouse=True)
def _five_minute_deduplication(monkeypatch: pytest.MonkeyPatch) -> None:
    deduplicate_like_sqs(monkeypatch)


def open_case(functions: SimpleNamespace, case_id: str = CASE_ID) -> None:
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=case_id))
    assert answer.status == 201, answer.raw


def refuse(fake_8x8: FakeContactCenter, times: int) -> None:
    """8x8 refuses the next `times` posts with a 400: each is dead-lettered at once."""
    fake_8x8.errors["send"] = [
        ContactCenterError("8x8 answered 400", upstream_status=400, upstream_code="BAD") for _ in range(times)
    ]


def move_back(tool: str, queues: Any) -> None:
    if tool == "console":
        assert console_redrive(queues.dead_letter_url, queues.outbound_url) == 1
    else:
        assert redrive(aws_client("sqs"), queues.dead_letter_url, queues.outbound_url, limit=1) == 1


def failed_events(event_bus: Any) -> list[dict[str, Any]]:
    return [e for e in event_bus.published() if e["detail-type"] == "MessageFailed"]


# ---- every dead-lettering gets its own deduplication id ---------------------------------------------------
@pytest.mark.parametrize("tool", ["script", "console"])
def test_a_redriven_message_failing_again_within_five_minutes_reaches_the_dead_letter_queue_again(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any, event_bus: Any, tool: str
) -> None:
    """8x8 refuses the message, an operator moves it back at once and 8x8 refuses it again: the second
    dead-lettering is a new message on the dead-letter queue (SQS would drop one with a reused deduplication id
    inside five minutes, silently), and each has its own MessageFailed."""
    open_case(functions)
    [message_id] = accept_messages(functions.outbound, "refused twice")
    refuse(fake_8x8, 2)
    assert drain(functions, fifo_queues.outbound_url) == []
    move_back(tool, fifo_queues)
    assert drain(functions, fifo_queues.outbound_url) == []
    [again] = receive(fifo_queues.dead_letter_url)
    assert json.loads(again["Body"])["messageId"] == message_id
    assert again["MessageAttributes"]["reason"]["StringValue"].startswith("8x8 answered 400")
    events = failed_events(event_bus)
    assert [e["detail"]["messageId"] for e in events] == [message_id, message_id]
    assert len({e["detail"]["eventId"] for e in events}) == 2, "two dead-letterings, two facts, two ids"
    record = message_record(CASE_ID, message_id)
    assert record is not None and record["status"]["S"] == "failed"


# ---- a message moved back by any tool is delivered ----------------------------------------------------------
@pytest.mark.parametrize("tool", ["script", "console"])
def test_a_message_moved_back_from_the_dead_letter_queue_is_delivered_whichever_tool_moved_it(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any, tool: str
) -> None:
    """SQS's own redrive keeps the body (redrive number 0) and its attributes: the sender must still tell it from
    the queue's redelivery of the message it dead-lettered, and send it (once)."""
    open_case(functions)
    [message_id] = accept_messages(functions.outbound, "refused once")
    refuse(fake_8x8, 1)
    assert drain(functions, fifo_queues.outbound_url) == []
    assert fake_8x8.sent == []
    move_back(tool, fifo_queues)
    assert drain(functions, fifo_queues.outbound_url) == []
    assert fake_8x8.sent == [(CONVERSATION_ID, "refused once", "user")]
    record = message_record(CASE_ID, message_id)
    assert record is not None and record["status"]["S"] == "sent"
    assert receive(fifo_queues.dead_letter_url) == [] and receive(fifo_queues.outbound_url) == []


def test_the_redrive_script_never_loses_a_message_that_fails_again_while_it_runs(
    functions: SimpleNamespace,
    services: Any,
    fake_8x8: FakeContactCenter,
    fifo_queues: Any,
    event_bus: Any,
    monkeypatch: Any,
) -> None:
    """The sender takes the moved message at once and 8x8 refuses it again within the same second, while the script
    is still emptying the dead-letter queue: the script must not move it a second time (a deduplication id made of
    the message id and the second would be dropped by SQS, and the copy it deletes would be the last one), nor
    circle it until its limit. The message ends on the dead-letter queue, moved once, with two MessageFailed."""
    import scripts.redrive  # noqa: PLC0415

    # One second for the whole run (the old deduplication id was made of it); raising=False: the script may not
    # read the time at all.
    monkeypatch.setattr(scripts.redrive, "time", SimpleNamespace(time=lambda: 1_767_225_600.0), raising=False)
    open_case(functions)
    [message_id] = accept_messages(functions.outbound, "refused for good")
    refuse(fake_8x8, 10)
    assert drain(functions, fifo_queues.outbound_url) == []
    sqs = aws_client("sqs")

    class SenderRunsAtOnce:
        """The queue's event source mapping delivering each moved message before the script goes on."""

        def __getattr__(self, name: str) -> Any:
            return getattr(sqs, name)

        def send_message(self, **kwargs: Any) -> Any:
            answer = sqs.send_message(**kwargs)
            drain(functions, fifo_queues.outbound_url)
            return answer

    moved = redrive(SenderRunsAtOnce(), fifo_queues.dead_letter_url, fifo_queues.outbound_url, limit=5)  # type: ignore[arg-type]
    assert receive(fifo_queues.outbound_url) == []
    left = [json.loads(m["Body"])["messageId"] for m in receive(fifo_queues.dead_letter_url)]
    assert left == [message_id], "the message waits on the dead-letter queue (at once, for the next redrive)"
    assert moved == 1
    assert len(failed_events(event_bus)) == 2


def test_the_queues_redelivery_of_a_dead_lettered_message_is_still_not_sent(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    """The other side of the redrive signal: the same queue message received again after its dead-lettering
    (its delete was lost, or MessageFailed's publish failed) is acknowledged, not sent, not dead-lettered twice."""
    open_case(functions)
    accept_messages(functions.outbound, "refused once")
    refuse(fake_8x8, 1)
    [received] = receive(fifo_queues.outbound_url)
    batch = sqs_batch([received])
    assert process(functions, batch) == []
    batch["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"  # the same message, received again
    assert process(functions, batch) == []
    assert fake_8x8.sent == []
    assert len(receive(fifo_queues.dead_letter_url)) == 1


# ---- one unreadable body does not hold up its batch --------------------------------------------------------
def test_an_unreadable_body_is_dead_lettered_with_its_reason_and_the_rest_of_the_batch_is_delivered(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any, event_bus: Any
) -> None:
    """A body with a field this sender does not know (a newer sender's, a hand-made one) and a body that is not
    JSON, between two good messages of other cases: the good ones are delivered, each bad one goes to the
    dead-letter queue as it was, with the reason; the one that names its case and message gets MessageFailed."""
    fake_8x8.conversation_ids = ["conversation-a", "conversation-d"]
    accept_messages(functions.outbound, "first", case_id="case-a")
    sqs = aws_client("sqs")
    unknown_field = json.dumps(
        {"caseId": "case-b", "messageId": "m-b", "text": "?", "authorType": "user", "acceptedAt": 1, "colour": "red"}
    )
    for group, body in (("case-b", unknown_field), ("case-c", "{not json")):
        sqs.send_message(
            QueueUrl=fifo_queues.outbound_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=group
        )
    accept_messages(functions.outbound, "second", case_id="case-d")
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    assert len(batch["Records"]) == 4
    assert process(functions, batch) == []
    assert sorted(text for _, text, _ in fake_8x8.sent) == ["first", "second"]
    dead = {m["Attributes"]["MessageGroupId"]: m for m in receive(fifo_queues.dead_letter_url)}
    assert sorted(dead) == ["case-b", "case-c"]
    assert dead["case-b"]["Body"] == unknown_field and dead["case-c"]["Body"] == "{not json"
    assert "colour" in dead["case-b"]["MessageAttributes"]["reason"]["StringValue"]
    assert "JSON" in dead["case-c"]["MessageAttributes"]["reason"]["StringValue"]
    [failed] = failed_events(event_bus)
    assert (failed["detail"]["caseId"], failed["detail"]["messageId"]) == ("case-b", "m-b")
    assert "colour" in failed["detail"]["reason"]
    record = message_record("case-b", "m-b")
    assert record is not None and record["status"]["S"] == "failed"


def test_an_unreadable_body_the_dead_letter_queue_refuses_returns_to_the_queue_alone(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any, monkeypatch: Any
) -> None:
    """SQS refuses the dead-lettering: that record goes back to the queue (tried again), the batch goes on."""
    sqs = aws_client("sqs")
    sqs.send_message(
        QueueUrl=fifo_queues.outbound_url, MessageBody="{not json", MessageGroupId="case-c", MessageDeduplicationId="c"
    )
    accept_messages(functions.outbound, "fine", case_id="case-a")

    def refused(*_: Any) -> None:
        raise RuntimeError("SQS refused")

    monkeypatch.setattr(services.queue, "dead_letter", refused)
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    unreadable = [r["messageId"] for r in batch["Records"] if r["body"] == "{not json"]
    assert process(functions, batch) == unreadable
    assert [text for _, text, _ in fake_8x8.sent] == ["fine"]


def test_the_redrive_script_leaves_an_unreadable_body_on_the_dead_letter_queue(
    functions: SimpleNamespace, services: Any, fifo_queues: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moving it back would only dead-letter it again; it stays for an operator, and the script says so."""
    sqs = aws_client("sqs")
    sqs.send_message(
        QueueUrl=fifo_queues.outbound_url, MessageBody="{not json", MessageGroupId="case-c", MessageDeduplicationId="c"
    )
    assert drain(functions, fifo_queues.outbound_url) == []
    assert redrive(sqs, fifo_queues.dead_letter_url, fifo_queues.outbound_url, limit=1) == 0
    assert "not a message" in capsys.readouterr().out
    assert receive(fifo_queues.outbound_url) == []


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        '{"caseId": "c"}',
        '{"caseId": 1, "messageId": "m", "text": "t", "authorType": "user", "acceptedAt": 1}',
        '{"caseId": "c", "messageId": "m", "text": "t", "authorType": "user", "acceptedAt": "1"}',
        '{"caseId": "c", "messageId": "m", "text": "t", "authorType": "user", "acceptedAt": 1, "attachments": {}}',
        "[" * 100_000,
    ],
)
def test_an_outbound_body_that_is_not_a_message_is_refused_with_a_reason(body: str) -> None:
    from casebridge.outbound_queue import UnreadableMessage  # noqa: PLC0415 - new in this change

    with pytest.raises(UnreadableMessage) as refused:
        OutboundMessage.from_json(body)
    assert str(refused.value)


def test_every_message_the_sender_writes_reads_back() -> None:
    """Every field of the queue body is understood by the reader (a new field must be added to both)."""
    full = OutboundMessage(
        caseId="c",
        messageId="m",
        text="t",
        authorType="bot",
        acceptedAt=1,
        redrive=2,
        attachments=[{"attachmentId": "a", "size": 1}],
        cards=[{"contentType": "x"}],
        **{f.name: f"value-{f.name}" for f in fields(OutboundMessage) if f.name not in _WRITTEN_ABOVE},
    )
    assert OutboundMessage.from_json(full.to_json()) == full
    plain = OutboundMessage(caseId="c", messageId="m", text="t", authorType="user", acceptedAt=1)
    assert OutboundMessage.from_json(plain.to_json()) == plain


_WRITTEN_ABOVE = {"caseId", "messageId", "text", "authorType", "acceptedAt", "redrive", "attachments", "cards"}


# ---- the whole delivery fits in the time left ---------------------------------------------------------------
def queue_with_files(services: Any, case_id: str, sizes: list[int]) -> OutboundMessage:
    message = OutboundMessage(
        caseId=case_id,
        messageId=f"m-files-{case_id}",
        text="three files",
        authorType="user",
        acceptedAt=1,
        attachments=[
            {"attachmentId": f"a{i}", "fileName": f"f{i}.png", "contentType": "image/png", "size": size}
            for i, size in enumerate(sizes)
        ],
    )
    services.queue.enqueue(message, deduplication_id=message.messageId)
    return message


def test_a_message_with_files_is_not_started_when_the_time_left_covers_one_call_but_not_its_uploads(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, fifo_queues: Any
) -> None:
    """30 s left: enough for a post (two HTTP timeouts), not for three uploads and a post. The message goes back
    untouched (no record, no 8x8 call), so no upload is cut off into an ambiguous retry."""
    open_case(functions)
    accept_messages(functions.outbound, "plain")
    files = queue_with_files(services, CASE_ID, [1024 * 1024] * 3)
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    ids = {json.loads(r["body"])["messageId"]: r["messageId"] for r in batch["Records"]}
    given_back = process(functions, batch, ScriptedTime(remaining=(60_000, 30_000)))
    assert given_back == [ids[files.messageId]]
    assert [text for _, text, _ in fake_8x8.sent] == ["plain"]
    assert message_record(CASE_ID, files.messageId) is None


def test_a_message_longer_than_any_invocation_is_still_started_first_in_a_fresh_one(
    functions: SimpleNamespace, services: Any, fifo_queues: Any
) -> None:
    """A budget above the whole invocation can never be met: the message is started when the invocation has
    spent nothing yet (the most time it will ever get), never left to circle until the receive limit."""
    open_case(functions)
    files = queue_with_files(services, CASE_ID, [40 * 1024 * 1024] * 10)
    batch = sqs_batch(receive(fifo_queues.outbound_url))
    process(functions, batch, ScriptedTime(remaining=(20_000,)))
    record = message_record(CASE_ID, files.messageId)
    assert record is not None, "the delivery was started"


def test_the_sender_timeout_covers_a_full_message_at_the_default_limits(casebridge_env: dict[str, str]) -> None:
    """With the template's defaults (files per message, bytes per file, HTTP timeout), the budget of a message
    carrying the most files of the largest size fits in the sender's timeout, which fits in the queue's
    visibility timeout (Lambda's event source mapping requires it)."""
    from casebridge.messages import delivery_budget_ms  # noqa: PLC0415 - new in this change
    from casebridge.settings import get_settings  # noqa: PLC0415

    template = load_template()
    parameters = template["Parameters"]
    count = int(parameters["AttachmentMaxPerMessage"]["Default"])
    size = int(parameters["AttachmentMaxBytes"]["Default"])
    full = OutboundMessage(
        caseId="c",
        messageId="m",
        text="t",
        authorType="user",
        acceptedAt=1,
        attachments=[{"attachmentId": str(i), "size": size} for i in range(count)],
    )
    timeout_s = int(template_properties("OutboundSenderFunction")["Timeout"])
    assert delivery_budget_ms(get_settings(), full) <= timeout_s * 1000
    assert timeout_s <= int(template_properties("OutboundQueue")["VisibilityTimeout"])
