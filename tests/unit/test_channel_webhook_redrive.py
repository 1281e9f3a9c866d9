"""The channel webhook's redrive script on SQS (moto): what it leaves on the dead-letter queue and why. The whole
path (the sender dead-letters, the script delivers signed to a real receiver) is in tests/e2e/test_channel_push.py."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from casebridge.push.webhook import Outcome
from scripts.redrive_channel_webhooks import redrive


@pytest.fixture
def dead_letters(aws: None) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(
        QueueName="channel-webhook-dlq.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    return sqs, url


def give_up(sqs: Any, url: str, case_id: str, sequence: int) -> str:
    event_id = f"ev-{case_id}-{sequence}"
    body = {"caseId": case_id, "sequence": sequence, "event": {"eventId": event_id, "type": "AgentMessage"}}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body | {"reason": "HTTP 400"}), MessageGroupId=case_id)
    return event_id


def remaining(sqs: Any, url: str) -> list[str]:
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages"):
        bodies += [m["Body"] for m in batch]
    return bodies


def test_an_unreadable_body_and_a_refused_event_stay_while_the_rest_is_delivered_in_order_per_case(
    dead_letters: tuple[Any, str],
) -> None:
    sqs, url = dead_letters
    a1, a2 = give_up(sqs, url, "case-a", 4), give_up(sqs, url, "case-a", 7)
    b1, b2 = give_up(sqs, url, "case-b", 2), give_up(sqs, url, "case-b", 3)
    sqs.send_message(QueueUrl=url, MessageBody="not json", MessageGroupId="case-c")
    tried: list[str] = []

    def channel(frame: dict[str, Any]) -> Outcome:
        tried.append(frame["eventId"])
        return Outcome(False, reason="HTTP 503") if frame["eventId"] == b1 else Outcome(True)

    report = redrive(sqs, url, channel)
    assert report.delivered == [a1, a2] and report.left == [b1] and len(report.unreadable) == 1
    # case-b's refused event holds back its later one: a case's events are never redriven out of order
    assert report.held_back == [b2] and b2 not in tried
    assert sorted(remaining(sqs, url)) == sorted(["not json", *(m for m in remaining_bodies(b1, b2))])


def remaining_bodies(*event_ids: str) -> list[str]:
    return [
        json.dumps(
            {
                "caseId": "case-b",
                "sequence": int(event_id.rsplit("-", 1)[1]),
                "event": {"eventId": event_id, "type": "AgentMessage"},
                "reason": "HTTP 400",
            }
        )
        for event_id in event_ids
    ]


def test_a_dry_run_delivers_nothing_and_leaves_every_event_visible(dead_letters: tuple[Any, str]) -> None:
    sqs, url = dead_letters
    first = give_up(sqs, url, "case-a", 1)
    listed = redrive(sqs, url, lambda _: pytest.fail("a dry run delivers nothing"), dry_run=True)
    assert listed.delivered == [first]
    assert redrive(sqs, url, lambda _: Outcome(True)).delivered == [first]  # still there, visible at once
    assert remaining(sqs, url) == []
