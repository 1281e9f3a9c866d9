"""Deliver the channel webhook's given-up events again, from its dead-letter queue, once the channel is fixed.

    python -m scripts.redrive_channel_webhooks --dlq-url <ChannelWebhookDeadLetterQueueUrl> \\
        --url <ChannelWebhookUrl> --secret-arn <ChannelWebhookSigningSecretArn> [--dry-run]

Each event is POSTed signed, as the sender would (same `webhook-id`: the event's eventId, so a channel that kept
it once drops it), and leaves the queue only when the channel answers 2xx. An event the channel refuses again
stays, with the reason printed, for the next run. The queue is FIFO per case: a case's event that stays holds
back that case's later ones until the next run (FIFO hands out a case's events in order, several to a batch), so
a case's events are redriven in order.

The case went on without these events: they reach the channel after later ones of their case, each with its
`sequence` on the case's timeline to put it in place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError
from standardwebhooks.webhooks import Webhook

from casebridge.push.webhook import Outcome, post_event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

Deliver = Callable[[dict[str, Any]], Outcome]


@dataclass
class RedriveReport:
    delivered: list[str] = field(default_factory=list)  # eventIds the channel took
    left: list[str] = field(default_factory=list)  # eventIds still on the dead-letter queue (refused again)
    held_back: list[str] = field(default_factory=list)  # eventIds behind one of their case's that stays
    unreadable: list[str] = field(default_factory=list)  # queue message ids that are not a given-up event


def redrive(sqs: SQSClient, dlq_url: str, deliver: Deliver, *, dry_run: bool = False) -> RedriveReport:
    report = RedriveReport()
    seen: set[str] = set()  # queue messages this run took: each is tried once per run
    left: list[str] = []  # receipt handles to make visible again when the run ends
    staying: set[str] = set()  # cases with an event refused again in this run
    while True:
        batch = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        # One this run tried already is back (the run outlived its hold): its newest receipt handle is the one
        # that counts. Only such messages left: the run is done.
        left.extend(item["ReceiptHandle"] for item in batch if item["MessageId"] in seen)
        fresh = [item for item in batch if item["MessageId"] not in seen]
        if not fresh:
            break
        for item in fresh:
            seen.add(item["MessageId"])
            try:
                given_up = json.loads(item["Body"])
                case_id, frame = str(given_up["caseId"]), dict(given_up["event"])
                event_id = str(frame["eventId"])
            except (ValueError, KeyError, TypeError):
                print(f"left on the dead-letter queue, not a given-up event: {item['MessageId']}")
                report.unreadable.append(item["MessageId"])
                left.append(item["ReceiptHandle"])
                continue
            what = f"case {case_id} event {event_id} ({frame.get('type')}, given up: {given_up.get('reason')})"
            if case_id in staying:  # an earlier event of its case stays: this one must not overtake it
                print(f"held back behind its case's earlier event: {what}")
                report.held_back.append(event_id)
                left.append(item["ReceiptHandle"])
                continue
            if dry_run:
                print(f"would deliver {what}")
                report.delivered.append(event_id)
                left.append(item["ReceiptHandle"])
                continue
            outcome = deliver(frame)
            if outcome.delivered:
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=item["ReceiptHandle"])
                print(f"delivered {what}")
                report.delivered.append(event_id)
            else:
                print(f"refused again, left: {what}: {outcome.reason}")
                report.left.append(event_id)
                staying.add(case_id)
                left.append(item["ReceiptHandle"])
    for receipt_handle in left:  # visible again now, not after the 60 s this run held them
        with contextlib.suppress(ClientError):  # a handle outdated by a later receive: that one is in the list too
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
    return report


def deliver_to(url: str, secret: str, timeout: float) -> Deliver:
    hook = Webhook(secret)
    return lambda frame: post_event(url, timeout, hook, frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dlq-url", required=True, help="the ChannelWebhookDeadLetterQueueUrl output")
    parser.add_argument("--url", required=True, help="the channel's webhook URL (ChannelWebhookUrl)")
    parser.add_argument("--secret-arn", required=True, help="the ChannelWebhookSigningSecretArn output")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the channel's answer")
    parser.add_argument("--dry-run", action="store_true", help="list what would be delivered, deliver nothing")
    args = parser.parse_args()
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=args.secret_arn)["SecretString"]
    report = redrive(
        boto3.client("sqs"), args.dlq_url, deliver_to(args.url, secret, args.timeout), dry_run=args.dry_run
    )
    verb = "would deliver" if args.dry_run else "delivered"
    print(
        f"{verb} {len(report.delivered)}; left {len(report.left)} refused again, {len(report.held_back)} behind"
        f" them, {len(report.unreadable)} unreadable"
    )


if __name__ == "__main__":
    main()
