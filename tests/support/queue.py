"""The outbound queue seen as Lambda's event source mapping sees it: receive from moto's SQS, build the SQS event,
run the sender's handler, read the message records it wrote."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from tests.support.aws import aws_client
from tests.support.lambdas import LambdaContext
from tests.support.samples import load_event


def receive(queue_url: str) -> list[dict[str, Any]]:
    answer = aws_client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )
    messages: list[dict[str, Any]] = answer.get("Messages", [])
    return messages


def sqs_batch(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The SQS event Lambda gets for received messages (the sample record's shape, the real handles)."""
    template = load_event("sqs_outbound_batch.json")["Records"][0]
    records = []
    for message in messages:
        record = json.loads(json.dumps(template))
        record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"])
        record["attributes"].update(message["Attributes"])
        records.append(record)
    return {"Records": records}


def process(functions: SimpleNamespace, batch: dict[str, Any], context: Any = None) -> list[str]:
    """Run a batch as the event source mapping does; returns the SQS message ids given back."""
    result = functions.outbound.lambda_handler(batch, context or LambdaContext())
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


def drain(functions: SimpleNamespace, queue_url: str, context: Any = None) -> list[str]:
    """Receive one batch, run it and delete what the handler did not give back (the event source mapping's
    part). Returns the SQS message ids given back."""
    messages = receive(queue_url)
    if not messages:
        return []
    given_back = process(functions, sqs_batch(messages), context)
    for message in messages:
        if message["MessageId"] not in given_back:
            aws_client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return given_back


def message_record(case_id: str, message_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        aws_client("dynamodb")
        .get_item(
            TableName="casebridge-cases", Key={"pk": {"S": f"CASE#{case_id}"}, "sk": {"S": f"MESSAGE#{message_id}"}}
        )
        .get("Item")
    )
    return item


def deduplicate_like_sqs(monkeypatch: Any) -> None:
    """moto drops a FIFO message whose deduplication id matches a message still in the queue; SQS drops it when
    the id was sent in the last five minutes, deleted or not ("accepted successfully but not delivered"). Make
    moto's FIFO queues remember every id for five minutes, as SQS does."""
    from moto.sqs import models  # noqa: PLC0415 - only where moto is in use

    seen: dict[tuple[str, str], float] = {}
    original = models.Queue.add_message

    def add_message(queue: Any, message: Any) -> None:
        if queue.fifo_queue and message.deduplication_id:
            key = (queue.name, message.deduplication_id)
            sent_at = float(message.sent_timestamp) / 1000
            first = seen.get(key)
            if first is not None and sent_at - first < models.DEDUPLICATION_TIME_IN_SECONDS:
                return
            seen[key] = sent_at
        original(queue, message)

    monkeypatch.setattr(models.Queue, "add_message", add_message)


def console_redrive(dlq_url: str, queue_url: str, sqs: Any = None) -> int:
    """What SQS's own DLQ redrive ("start DLQ redrive" in the console, StartMessageMoveTask) does, which moto does
    not implement: each message goes back to the source queue with its body, group, deduplication id and message
    attributes unchanged, and leaves the dead-letter queue. Returns how many moved."""
    sqs = sqs or aws_client("sqs")
    moved = 0
    while True:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return moved
        for message in batch:
            attributes = {
                name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
                for name, value in (message.get("MessageAttributes") or {}).items()
            }
            sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=message["Body"],
                MessageGroupId=message["Attributes"]["MessageGroupId"],
                MessageDeduplicationId=message["Attributes"]["MessageDeduplicationId"],
                MessageAttributes=attributes,
            )
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
