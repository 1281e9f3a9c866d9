"""The escalation's timers: one sweep over the sparse index decides queue timeouts (and hand-back), wait
updates, customer idle and its end, and transcripts; each once per occasion, whatever the sweeps' timing."""
# ruff: noqa: PLC0415

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from casebridge.escalation import timers
from casebridge.escalation.availability import QueueFiguresCache
from casebridge.escalation.metrics import QueueFigures
from casebridge.escalation.wiring import EscalationParts
from tests.support.aws import aws_client
from tests.support.connector import map_case
from tests.support.signing import WebhookSigner

MINUTE = 60_000


class Source:
    def __init__(self) -> None:
        self.figures = QueueFigures(available=0, eligible=2, waiting=3, average_handling_ms=120_000)
        self.calls = 0

    def queue_figures(self, queue_id: str) -> QueueFigures:
        self.calls += 1
        return self.figures


@pytest.fixture
def swept(services: Any, fake_8x8: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from casebridge.contact_center.webhook_gateway import parse_webhook_event
    from casebridge.services import set_services

    bucket = "casebridge-attachments"
    aws_client("s3").create_bucket(Bucket=bucket)
    fake_8x8.api = "chat-gateway-v1"
    settings = replace(
        services.settings,
        attachments_bucket_name=bucket,
        max_queued_minutes=10,
        customer_idle_minutes=5,
        customer_idle_grace_minutes=2,
    )
    source = Source()
    wired = replace(services, settings=settings, webhook_parser=parse_webhook_event)
    wired.escalation = EscalationParts(QueueFiguresCache(wired.store, source))
    set_services(wired)
    wired.source = source
    return wired


def send(signer: WebhookSigner, services: Any, event_id: str, event_type: str, at: int, **data: Any) -> None:
    from casebridge import webhooks

    body = json.dumps({"eventType": event_type, "conversationId": "conv-1", "timestamp": at, "data": data}).encode()
    webhooks.handle_webhook(services, signer.headers(body, event_id=event_id), body)


def kinds(services: Any, kind: str) -> list[dict[str, Any]]:
    entries, _ = services.store.list_timeline("case-1", None, 100)
    return [e.detail for e in entries if e.type == kind]


def queued_asking_hand_back(services: Any, signer: WebhookSigner) -> int:
    """A case opened with `"onQueueTimeout": "handback"`, queued now (8x8's QUEUED): when it was queued."""
    map_case("case-1", "conv-1")
    aws_client("dynamodb").update_item(
        TableName=services.store.table,
        Key={"pk": {"S": "CASE#case-1"}, "sk": {"S": "CASE"}},
        UpdateExpression="SET onQueueTimeout = :h",
        ExpressionAttributeValues={":h": {"S": "handback"}},
    )
    queued_at = int(time.time() * 1000)
    send(signer, services, "e1", "QUEUED", queued_at, queueId="q1")
    return queued_at


def agent_then_8x8_idle(services: Any, signer: WebhookSigner) -> int:
    """Queued, an agent joins, then 8x8's CONVERSATION_UPDATE idle: the interaction ends with no agent-left."""
    map_case("case-1", "conv-1")
    now = int(time.time() * 1000)
    send(signer, services, "e1", "QUEUED", now, queueId="q1")
    send(signer, services, "e2", "MEMBERS_CHANGED", now + 1, memberType="agent", change="joined", id="a1")
    send(signer, services, "e3", "CONVERSATION_UPDATE", now + 2, state="idle")
    return now


def index_keys(services: Any) -> list[str]:
    return list(timers.active_case_ids(services))


def test_only_cases_in_play_are_in_the_index(swept: Any, webhook_signer: WebhookSigner) -> None:
    map_case("case-1", "conv-1")
    assert index_keys(swept) == []  # opened, not queued: nothing to time
    send(webhook_signer, swept, "e1", "QUEUED", 1_000, queueId="q1")
    assert index_keys(swept) == ["case-1"]


def test_a_case_queued_too_long_times_out_once_and_is_handed_back_when_asked(
    swept: Any, webhook_signer: WebhookSigner, fake_8x8: Any
) -> None:
    queued_at = queued_asking_hand_back(swept, webhook_signer)
    timers.sweep(swept, now=queued_at + 9 * MINUTE)
    assert kinds(swept, "QueueTimeout") == []
    timers.sweep(swept, now=queued_at + 10 * MINUTE)
    timers.sweep(swept, now=queued_at + 11 * MINUTE)  # the next sweep finds it done
    [timeout] = kinds(swept, "QueueTimeout")
    assert (timeout["queueId"], timeout["queuedSeconds"]) == ("q1", 600)
    assert kinds(swept, "HandedBack") == [{"reason": "queue-timeout"}]
    assert fake_8x8.left == ["conv-1"]  # the conversation ended in 8x8
    assert swept.store.get_case("case-1").live.state.value == "closed"


def test_a_queue_timeout_hand_back_whose_leave_failed_is_made_by_the_next_sweep(
    swept: Any, webhook_signer: WebhookSigner, fake_8x8: Any
) -> None:
    from casebridge.errors import ContactCenterUnavailable

    queued_at = queued_asking_hand_back(swept, webhook_signer)
    fake_8x8.errors["leave"] = [ContactCenterUnavailable("8x8 answered 503")]
    report = timers.sweep(swept, now=queued_at + 10 * MINUTE)
    assert report.failures == 1 and kinds(swept, "HandedBack") == []  # 8x8 refused the leave this time
    timers.sweep(swept, now=queued_at + 11 * MINUTE)
    assert len(kinds(swept, "QueueTimeout")) == 1  # the timeout itself is not repeated
    assert kinds(swept, "HandedBack") == [{"reason": "queue-timeout"}]
    assert fake_8x8.left == ["conv-1"]
    assert swept.store.get_case("case-1").live.state.value == "closed"
    assert kinds(swept, "WaitUpdate") == []  # a timed-out case is not told to wait


def test_without_handback_a_queue_timeout_only_notifies(
    swept: Any, webhook_signer: WebhookSigner, fake_8x8: Any
) -> None:
    map_case("case-1", "conv-1")
    queued_at = int(time.time() * 1000)
    send(webhook_signer, swept, "e1", "QUEUED", queued_at, queueId="q1")
    timers.sweep(swept, now=queued_at + 10 * MINUTE)
    assert len(kinds(swept, "QueueTimeout")) == 1
    assert kinds(swept, "HandedBack") == [] and fake_8x8.left == []
    assert swept.store.get_case("case-1").live.state.value == "queued"


def test_wait_updates_once_a_minute_only_on_change_one_metrics_read_per_queue(
    swept: Any, webhook_signer: WebhookSigner
) -> None:
    from casebridge.escalation.availability import metrics_pk

    now = int(time.time() * 1000)
    for n in (1, 2, 3):
        map_case(f"case-{n}", f"conv-{n}")
        from casebridge import webhooks

        body = json.dumps(
            {"eventType": "QUEUED", "conversationId": f"conv-{n}", "timestamp": now, "data": {"queueId": "q1"}}
        ).encode()
        webhooks.handle_webhook(swept, webhook_signer.headers(body, event_id=f"q-{n}"), body)
    report = timers.sweep(swept, now=now + 1000)
    assert report.events == {"WaitUpdate": 3} and swept.source.calls == 1  # one read serves the queue's 3 cases
    assert kinds(swept, "WaitUpdate") == [{"queueId": "q1", "waiting": 3, "estimatedWaitSeconds": 240}]
    report = timers.sweep(swept, now=now + 30_000)  # inside the minute: nothing
    assert report.events == {}
    aws_client("dynamodb").delete_item(
        TableName=swept.store.table, Key={"pk": {"S": metrics_pk("q1")}, "sk": {"S": "METRICS"}}
    )  # the figures' interval is over
    assert timers.sweep(swept, now=now + 62_000).events == {}  # a minute later, same figures: nothing
    swept.source.figures = replace(swept.source.figures, waiting=1)
    aws_client("dynamodb").delete_item(
        TableName=swept.store.table, Key={"pk": {"S": metrics_pk("q1")}, "sk": {"S": "METRICS"}}
    )
    assert timers.sweep(swept, now=now + 63_000).events == {"WaitUpdate": 3}
    assert kinds(swept, "WaitUpdate")[-1] == {"queueId": "q1", "waiting": 1, "estimatedWaitSeconds": 120}


def test_a_silent_customer_gets_customer_idle_then_the_end_after_the_grace(
    swept: Any, webhook_signer: WebhookSigner, fake_8x8: Any
) -> None:
    map_case("case-1", "conv-1")
    joined_at = int(time.time() * 1000)
    send(webhook_signer, swept, "e1", "QUEUED", joined_at - 1000, queueId="q1")
    send(webhook_signer, swept, "e2", "MEMBERS_CHANGED", joined_at, memberType="agent", change="joined", id="a1")
    timers.sweep(swept, now=joined_at + 4 * MINUTE)
    assert kinds(swept, "CustomerIdle") == []
    timers.sweep(swept, now=joined_at + 5 * MINUTE)
    timers.sweep(swept, now=joined_at + 6 * MINUTE)
    assert kinds(swept, "CustomerIdle") == [{"idleSeconds": 300, "source": "casebridge"}]
    assert fake_8x8.left == []
    timers.sweep(swept, now=joined_at + 7 * MINUTE)  # 5 + 2 minutes of silence: the end
    assert fake_8x8.left == ["conv-1"]
    assert swept.store.get_case("case-1").live.state.value == "closed"


def test_a_customer_who_writes_again_starts_the_idle_clock_over(swept: Any, webhook_signer: WebhookSigner) -> None:
    from casebridge.escalation.marks import set_marks

    map_case("case-1", "conv-1")
    joined_at = int(time.time() * 1000)
    send(webhook_signer, swept, "e2", "MEMBERS_CHANGED", joined_at, memberType="agent", change="joined", id="a1")
    set_marks(swept.store, "case-1", customerActiveAt=joined_at + 3 * MINUTE)
    timers.sweep(swept, now=joined_at + 6 * MINUTE)
    assert kinds(swept, "CustomerIdle") == []
    timers.sweep(swept, now=joined_at + 8 * MINUTE)
    assert len(kinds(swept, "CustomerIdle")) == 1


def test_a_closed_case_gets_its_transcript_and_leaves_the_index(
    swept: Any, webhook_signer: WebhookSigner, fake_8x8: Any
) -> None:
    from casebridge import cases

    map_case("case-1", "conv-1")
    now = int(time.time() * 1000)
    send(webhook_signer, swept, "e1", "QUEUED", now, queueId="q1", queueName="Support")
    send(webhook_signer, swept, "e2", "MEMBERS_CHANGED", now + 1, memberType="agent", change="joined", id="a1")
    send(webhook_signer, swept, "e3", "MESSAGE", now + 2, sender={"type": "agent", "id": "a1"}, text="Hello")
    cases.customer_leaves(swept, "case-1")
    assert index_keys(swept) == ["case-1"]
    timers.sweep(swept, now=now + MINUTE)
    [ready] = kinds(swept, "TranscriptReady")
    assert ready["messages"] == 1
    objects = aws_client("s3").list_objects_v2(Bucket="casebridge-attachments")["Contents"]
    [stored] = [o["Key"] for o in objects]
    assert stored.startswith("transcripts/case-1/") and stored.endswith(".json")
    transcript = json.loads(aws_client("s3").get_object(Bucket="casebridge-attachments", Key=stored)["Body"].read())
    assert transcript["messages"][0]["text"] == "Hello"
    assert transcript["interactions"][0]["endReason"] == "customer-left"
    timers.sweep(swept, now=now + 2 * MINUTE)
    assert index_keys(swept) == []
    assert len(kinds(swept, "TranscriptReady")) == 1


def test_a_lost_hand_back_is_made_by_the_sweep(swept: Any, webhook_signer: WebhookSigner, monkeypatch: Any) -> None:
    from casebridge.escalation import signals

    map_case("case-1", "conv-1")
    now = int(time.time() * 1000)
    send(webhook_signer, swept, "e1", "QUEUED", now, queueId="q1")
    send(webhook_signer, swept, "e2", "MEMBERS_CHANGED", now + 1, memberType="agent", change="joined", id="a1")
    monkeypatch.setattr(signals, "hand_back", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    left = {"memberType": "agent", "change": "left", "id": "a1", "wrapUpCode": "Sold"}
    send(webhook_signer, swept, "e3", "MEMBERS_CHANGED", now + 2, **left)
    monkeypatch.undo()
    assert kinds(swept, "HandedBack") == []  # the intake's follow-up crashed after 8x8's event was recorded
    timers.sweep(swept, now=now + MINUTE)
    assert kinds(swept, "HandedBack") == [{"reason": "agent-ended", "wrapUpCode": "Sold"}]


def test_an_end_by_8x8_idle_alone_is_handed_back_as_idle_once_no_agent_left_came(
    swept: Any, webhook_signer: WebhookSigner
) -> None:
    now = agent_then_8x8_idle(swept, webhook_signer)
    assert swept.store.get_case("case-1").live.state.value == "agent_left"
    timers.sweep(swept, now=now + 30_000)
    assert kinds(swept, "HandedBack") == []  # an agent-left may still come
    timers.sweep(swept, now=now + 2 + MINUTE)
    assert kinds(swept, "HandedBack") == [{"reason": "idle"}]  # not "agent-ended": no agent left


def test_an_idle_followed_by_the_agent_leaving_is_handed_back_once_as_agent_ended(
    swept: Any, webhook_signer: WebhookSigner
) -> None:
    now = agent_then_8x8_idle(swept, webhook_signer)
    timers.sweep(swept, now=now + 10_000)
    left = {"memberType": "agent", "change": "left", "id": "a1", "wrapUpCode": "Sold"}
    send(webhook_signer, swept, "e4", "MEMBERS_CHANGED", now + 3, **left)
    timers.sweep(swept, now=now + 2 * MINUTE)
    assert kinds(swept, "HandedBack") == [{"reason": "agent-ended", "wrapUpCode": "Sold"}]


def test_every_event_the_escalation_records_fits_the_published_schema(
    swept: Any, webhook_signer: WebhookSigner, fake_8x8: Any
) -> None:
    import jsonschema

    from casebridge import cases
    from casebridge.business_api.views import event_json_schema, event_view
    from casebridge.escalation.signals import after_delivery

    map_case("case-1", "conv-1")
    now = int(time.time() * 1000)
    send(webhook_signer, swept, "e1", "QUEUED", now, queueId="q1", queueName="Support")
    timers.sweep(swept, now=now + 1000)  # WaitUpdate
    send(webhook_signer, swept, "e2", "MEMBERS_CHANGED", now + 1, memberType="agent", change="joined", id="a1")
    case = swept.store.get_case("case-1")
    files = [{"attachmentId": "att-1", "fileName": "a.png", "contentType": "image/png", "size": 3}]
    after_delivery(swept, case, "m-1", "user", "hi", client_message_id="cm-1", attachments=files)
    send(webhook_signer, swept, "e3", "ACTIVITY", now + 2, name="read-receipts", value={"readAt": now})
    timers.sweep(swept, now=now + 6 * MINUTE)  # CustomerIdle
    left = {"memberType": "agent", "change": "left", "id": "a1", "wrapUpCode": "Done"}
    send(webhook_signer, swept, "e4", "MEMBERS_CHANGED", now + 3, **left)  # HandedBack
    cases.customer_leaves(swept, "case-1")
    timers.sweep(swept, now=now + 7 * MINUTE)  # TranscriptReady
    entries, _ = swept.store.list_timeline("case-1", None, 100)
    expected = {"WaitUpdate", "CustomerMessage", "MessageDelivered", "MessageRead", "CustomerIdle", "HandedBack"}
    assert expected | {"TranscriptReady"} <= {e.type for e in entries}
    for entry in entries:
        jsonschema.validate(json.loads(json.dumps(event_view(entry, "case-1"), default=int)), event_json_schema())


def test_a_sweep_stops_before_the_invocation_ends_and_the_next_goes_on(
    swept: Any, webhook_signer: WebhookSigner
) -> None:
    from casebridge import webhooks

    now = int(time.time() * 1000)
    for n in range(4):
        map_case(f"case-{n}", f"conv-{n}")
        body = json.dumps(
            {"eventType": "QUEUED", "conversationId": f"conv-{n}", "timestamp": now, "data": {"queueId": "q1"}}
        ).encode()
        webhooks.handle_webhook(swept, webhook_signer.headers(body, event_id=f"q-{n}"), body)
    budget = iter([60_000, 60_000, 1_000])  # time for two cases, then the end is near
    report = timers.sweep(swept, now=now + 1000, remaining_ms=lambda: next(budget, 0))
    assert (report.cases, report.left) == (2, 2)
    assert timers.sweep(swept, now=now + 2000).cases == 4
