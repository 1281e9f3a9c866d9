"""Move outbound messages from the dead-letter queue back onto the outbound queue, in order, per case.

    python -m scripts.redrive --dlq-url <OutboundDeadLetterQueueUrl> --queue-url <outbound queue url> [--dry-run]

Each message keeps its case's message group; the sender delivers it again (a message already recorded as
sent is not sent twice). Use it once the cause (8x8 outage, bad credentials) is fixed. A message moves once per
run: one that fails again while the run goes on is left on the dead-letter queue for the next run.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

import boto3

from casebridge.outbound_queue import OutboundMessage, UnreadableMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def redrive(sqs: SQSClient, dlq_url: str, queue_url: str, *, dry_run: bool = False, limit: int = 10_000) -> int:
    moved = 0
    taken: set[str] = set()  # casebridge's ids of the messages moved by this run
    again: list[str] = []  # receipt handles of those dead-lettered again while it ran
    while moved < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not batch:
            break
        for item in batch:
            attributes = item.get("MessageAttributes") or {}
            reason = attributes["reason"].get("StringValue", "") if "reason" in attributes else ""
            try:
                message = OutboundMessage.from_json(item["Body"])
            except UnreadableMessage:
                # Not a message: moving it back would only dead-letter it again. Left for an operator to read.
                print(f"left on the dead-letter queue, not a message ({reason}): {item['MessageId']}")
                continue
            if message.messageId in taken:
                # Moved by this run and dead-lettered again since (the cause is not fixed): moving it once more
                # would circle it until the limit. Left, visible again once this run ends, for the next one.
                print(f"case {message.caseId} message {message.messageId} failed again: left ({reason})")
                again.append(item["ReceiptHandle"])
                continue
            print(f"case {message.caseId} message {message.messageId}: {reason}")
            if not dry_run:
                # A new redrive number: the sender sends a dead-lettered message again only when redriven. The
                # deduplication id names this dead-letter queue copy: a rerun after a move whose delete failed is
                # dropped by SQS (within its five minutes), and no two moves of the message can share one.
                redriven = replace(message, redrive=message.redrive + 1)
                sqs.send_message(
                    QueueUrl=queue_url,
                    MessageBody=redriven.to_json(),
                    MessageGroupId=message.caseId,
                    MessageDeduplicationId=f"redrive-{item['MessageId']}",
                )
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=item["ReceiptHandle"])
            taken.add(message.messageId)
            moved += 1
        if dry_run:
            break
    for receipt_handle in again:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dlq-url", required=True)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--dry-run", action="store_true", help="list what would move, move nothing")
    args = parser.parse_args()
    moved = redrive(boto3.client("sqs"), args.dlq_url, args.queue_url, dry_run=args.dry_run)
    print(f"{'would move' if args.dry_run else 'moved'} {moved} message(s)")


if __name__ == "__main__":
    main()
