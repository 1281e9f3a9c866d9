"""The SQS event-source mappings of the template: one thread per `Type: SQS` event that long-polls the queue in
moto and hands batches to the function, as Lambda's poller does.

Like Lambda: BatchSize, the SQS event shape (attributes include ApproximateReceiveCount), and with
ReportBatchItemFailures only the records the function reports as failed stay on the queue; an error thrown by
the function leaves the whole batch. What stays on the queue comes back after its visibility timeout (or
earlier, when the function changed that message's visibility itself to back off).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scripts.local_stack.functions import LocalFunction
from scripts.local_stack.template import SqsSource

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

BatchLog = Callable[[str, int, int], None]  # (function logical id, records, failed)


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in attributes.items()
    }


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": lambda_message_attributes(dict(message.get("MessageAttributes", {}))),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class SqsPoller:
    source: SqsSource
    function: LocalFunction
    sqs: SQSClient
    queue_url: str
    queue_arn: str
    region: str
    wait_seconds: int = 1
    on_batch: BatchLog | None = None
    batches: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        name = f"sqs-poller-{self.source.function_id}-{self.source.event_id}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_seconds + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:  # keep polling, as Lambda's poller does; say what happened
                self.errors.append(f"{type(error).__name__}: {error}")
                self._stop.wait(0.5)

    def poll_once(self) -> int:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(self.source.batch_size, 10)),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages or self._stop.is_set():
            return 0
        event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in messages]}
        failed = self.failed_ids(event, messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        self.batches += 1
        if self.on_batch:
            self.on_batch(self.source.function_id, len(messages), len(failed))
        return len(messages)

    def failed_ids(self, event: dict[str, Any], messages: list[MessageTypeDef]) -> set[str]:
        """Ids of the records that stay on the queue."""
        everything = {m["MessageId"] for m in messages}
        try:
            result, _ = self.function.invoke(event)
        except Exception as error:
            self.errors.append(f"{self.function.logical_id} failed its batch: {type(error).__name__}: {error}")
            return everything
        if not self.source.report_batch_item_failures:
            return set()
        failures = (result or {}).get("batchItemFailures") if isinstance(result, dict) else None
        if not failures:
            return set()
        ids = {str(f.get("itemIdentifier") or "") for f in failures}
        # An empty or unknown identifier makes Lambda treat the whole batch as failed.
        return everything if ids - everything else ids


def start_pollers(
    sources: list[SqsSource],
    functions: dict[str, LocalFunction],
    sqs: SQSClient,
    resolve_arn: Callable[[Any], str],
    queue_url_for_arn: Callable[[str], str],
    region: str,
    on_batch: BatchLog | None = None,
) -> list[SqsPoller]:
    pollers = []
    for source in sources:
        if not source.enabled:
            continue
        arn = resolve_arn(source.queue_arn)
        poller = SqsPoller(
            source=source,
            function=functions[source.function_id],
            sqs=sqs,
            queue_url=queue_url_for_arn(arn),
            queue_arn=arn,
            region=region,
            on_batch=on_batch,
        )
        poller.start()
        pollers.append(poller)
    return pollers


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
