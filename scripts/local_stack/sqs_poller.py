"""The SQS event-source mappings of the template, as Lambda's poller runs them: for each `Type: SQS` event, a
reader long-polls the queue in moto and hands each batch to the function, up to `concurrency` batches at once.

Like Lambda: BatchSize, the SQS event shape (attributes include ApproximateReceiveCount), and with
ReportBatchItemFailures only the records the function reports as failed stay on the queue; an error thrown by
the function leaves the whole batch. What stays on the queue comes back after its visibility timeout (or
earlier, when the function changed that message's visibility itself to back off).

Concurrency: Lambda's mapping runs several batches at once; for a FIFO queue, batches of different message
groups, never two of one group (a case's messages stay in order). SQS itself holds back a group while one of
its messages is in flight; the poller also keeps a set of the groups its batches hold and makes a batch that
shares one wait for it, so the order holds whatever the queue does. The reader is woken by moto as soon as a
message lands (scripts/local_stack/moto_process.py) and reads again as soon as a batch slot is free.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


BATCHES_AT_ONCE = 5  # Lambda's SQS mapping starts with five concurrent batches


@dataclass
class SqsPoller:
    source: SqsSource
    function: LocalFunction
    sqs: SQSClient
    queue_url: str
    queue_arn: str
    region: str
    wait_seconds: int = 1
    concurrency: int = BATCHES_AT_ONCE
    on_batch: BatchLog | None = None
    batches: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _workers: ThreadPoolExecutor | None = None
    # The message groups of the batches in flight, and how many batches are; both under _cond.
    _groups: set[str] = field(default_factory=set)
    _running: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        name = f"sqs-poller-{self.source.function_id}-{self.source.event_id}"
        self._workers = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"{name}-batch")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_seconds + 5)
        if self._workers is not None:
            self._workers.shutdown(wait=True)

    def _run(self) -> None:
        assert self._workers is not None, "start() makes the workers"
        while not self._stop.is_set():
            if not self._wait(lambda: self._running < self.concurrency):
                return
            try:
                messages = self.receive()
            except Exception as error:  # keep polling, as Lambda's poller does; say what happened
                self.errors.append(f"{type(error).__name__}: {error}")
                self._stop.wait(0.5)
                continue
            if not messages:
                continue
            groups = {g for m in messages if (g := m.get("Attributes", {}).get("MessageGroupId"))}
            if not self._claim(groups):
                return
            self._workers.submit(self._handle, messages, groups)

    def _wait(self, ready: Callable[[], bool]) -> bool:
        """Until ready() (under _cond) or stop; False on stop."""
        with self._cond:
            self._cond.wait_for(lambda: ready() or self._stop.is_set())
            return not self._stop.is_set()

    def _claim(self, groups: set[str]) -> bool:
        """Until no batch in flight holds one of these groups, then hold them for a new batch; False on stop."""
        with self._cond:
            self._cond.wait_for(lambda: not groups & self._groups or self._stop.is_set())
            if self._stop.is_set():
                return False
            self._groups |= groups
            self._running += 1
            return True

    def receive(self) -> list[MessageTypeDef]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(self.source.batch_size, 10)),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return answer.get("Messages", [])

    def _handle(self, messages: list[MessageTypeDef], groups: set[str]) -> None:
        try:
            self.process(messages)
        except Exception as error:  # the records stay on the queue; say what happened
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            with self._cond:
                self._groups -= groups
                self._running -= 1
                self._cond.notify_all()

    def process(self, messages: list[MessageTypeDef]) -> int:
        """One batch: invoke, then delete what the function did not report as failed."""
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
        with self._cond:
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
