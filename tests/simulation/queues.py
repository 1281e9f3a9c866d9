"""SQS FIFO and EventBridge in memory, and Lambda's SQS event source mapping.

SQS FIFO as documented: one message group is handed out in order and is locked while any of its messages is in
flight; a receive makes a message invisible for the visibility timeout and counts the receive; a receive past
maxReceiveCount moves it to the dead-letter queue (silently); a deduplication id seen in the last five minutes
is accepted and dropped. EventBridge's PutEvents may refuse some entries (FailedEntryCount) or all (throttling).
"""
# ruff: noqa: N803 - the stand-ins take boto3's parameter names

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ReadTimeoutError

from tests.support.events import sqs_event

if TYPE_CHECKING:
    from tests.simulation.world import LambdaRuntime, Proc, World

DEDUPLICATION_WINDOW_S = 300.0
ACCOUNT = "123456789012"


def _error(code: str, message: str, operation: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(response, operation)


@dataclass(eq=False)
class QueuedMessage:
    message_id: str
    body: str
    group: str
    deduplication_id: str
    sequence: int
    sent_at: float
    attributes: dict[str, Any] = field(default_factory=dict)
    receive_count: int = 0
    visible_at: float = 0.0
    receipt: str | None = None


class FifoQueue:
    def __init__(
        self,
        world: World,
        name: str,
        visibility_timeout: float,
        max_receive_count: int = 0,
        dlq: FifoQueue | None = None,
        per_group_deduplication: bool = False,
        fifo: bool = True,
    ) -> None:
        self.world = world
        self.fifo = fifo  # a standard queue: no groups, no deduplication (the attachment copy queue)
        self.name = name
        self.url = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{name}"
        self.arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self.dlq = dlq
        self.per_group_deduplication = per_group_deduplication  # DeduplicationScope: messageGroup
        self.messages: list[QueuedMessage] = []
        self._dedup: dict[str, tuple[float, str]] = {}
        self._sequence = 0
        self.sent: list[QueuedMessage] = []  # every message ever enqueued, in order (the simulation's bookkeeping)
        self.deduplicated = 0
        self.silently_dead_lettered: list[QueuedMessage] = []
        self.dropped: list[QueuedMessage] = []  # sends the deduplication window dropped (body kept for the checks)
        self.moved_back: list[QueuedMessage] = []  # what SQS's own redrive took from this (dead-letter) queue
        self.on_change: Callable[[float], None] = lambda when: None

    def send(self, body: str, group: str, deduplication_id: str, attributes: dict[str, Any] | None = None) -> str:
        now = self.world.now
        dedup_key = f"{group}/{deduplication_id}" if self.per_group_deduplication else deduplication_id
        known = self._dedup.get(dedup_key) if self.fifo else None
        if known and known[0] > now:
            self.deduplicated += 1
            self.dropped.append(QueuedMessage(known[1], body, group, deduplication_id, 0, now))
            self.world.log(f"   sqs {self.name}: deduplicated {deduplication_id}")
            return known[1]
        self._sequence += 1
        message = QueuedMessage(
            f"{self.name}-{self._sequence}", body, group, deduplication_id, self._sequence, now, dict(attributes or {})
        )
        self._dedup[dedup_key] = (now + DEDUPLICATION_WINDOW_S, message.message_id)
        self.messages.append(message)
        self.sent.append(message)
        self.on_change(now)
        return message.message_id

    def receive(self, limit: int, visibility: float | None = None) -> list[QueuedMessage]:
        now = self.world.now
        locked = {m.group for m in self.messages if m.receipt is not None and m.visible_at > now}
        taken: list[QueuedMessage] = []
        for message in list(self.messages):
            if len(taken) >= limit:
                break
            if self.fifo and message.group in locked:
                continue
            if not self.fifo and message.receipt is not None and message.visible_at > now:
                continue  # in flight
            message.receive_count += 1
            if self.max_receive_count and message.receive_count > self.max_receive_count and self.dlq is not None:
                # SQS's own redrive: the message leaves without the sender knowing.
                self.messages.remove(message)
                self.silently_dead_lettered.append(message)
                self.dlq.send(message.body, message.group, f"sqs-redrive-{message.message_id}", message.attributes)
                locked.add(message.group)
                continue
            message.visible_at = now + (self.visibility_timeout if visibility is None else visibility)
            message.receipt = f"{message.message_id}#{message.receive_count}"
            taken.append(message)
        for group in {m.group for m in taken}:
            locked.add(group)
        if taken:
            self.on_change(min(m.visible_at for m in taken))
        return taken

    def _by_receipt(self, receipt: str, operation: str) -> QueuedMessage | None:
        message_id = receipt.split("#", 1)[0]
        message = next((m for m in self.messages if m.message_id == message_id), None)
        if message is not None and message.receipt != receipt:
            raise _error("ReceiptHandleIsInvalid", "the receipt handle has expired", operation)
        return message

    def delete(self, receipt: str) -> None:
        message = self._by_receipt(receipt, "DeleteMessage")
        if message is not None:
            self.messages.remove(message)
            self.on_change(self.world.now)

    def change_visibility(self, receipt: str, seconds: float) -> None:
        message = self._by_receipt(receipt, "ChangeMessageVisibility")
        if message is None or message.visible_at <= self.world.now:
            raise _error("MessageNotInflight", "the message is not in flight", "ChangeMessageVisibility")
        message.visible_at = self.world.now + seconds
        self.on_change(message.visible_at)

    def move_to(self, source: FifoQueue) -> int:
        """SQS's own DLQ redrive (the console's "start DLQ redrive", StartMessageMoveTask): each message goes back
        to its source queue as it is (body, group, attributes; a new SQS message), its deduplication id kept."""
        moved = 0
        for message in list(self.messages):
            if message.receipt is not None and message.visible_at > self.world.now:
                continue  # in flight: the task takes it later
            self.messages.remove(message)
            source.send(message.body, message.group, message.deduplication_id, message.attributes)
            self.moved_back.append(replace(message, sent_at=self.world.now))
            moved += 1
        return moved

    def wire(self, message: QueuedMessage) -> dict[str, Any]:
        return {
            "MessageId": message.message_id,
            "ReceiptHandle": message.receipt,
            "Body": message.body,
            "MD5OfBody": "",
            "Attributes": {
                "ApproximateReceiveCount": str(message.receive_count),
                "MessageGroupId": message.group,
                "MessageDeduplicationId": message.deduplication_id,
                "SequenceNumber": str(message.sequence),
                "SentTimestamp": str(int(message.sent_at * 1000)),
                "ApproximateFirstReceiveTimestamp": str(int(message.sent_at * 1000)),
            },
            "MessageAttributes": message.attributes,
        }


class SqsClient:
    """The SQS client calls the connector and the operator's redrive script make."""

    def __init__(self, world: World, queues: list[FifoQueue]) -> None:
        self.world = world
        self.queues = {q.url: q for q in queues}

    def _call(self, operation: str, queue: FifoQueue, kinds: tuple[str, ...]) -> str | None:
        fault = self.world.step(f"sqs {operation} {queue.name}", "sqs", kinds, latency_s=0.01)
        if fault == "throttle":
            raise _error("ThrottlingException", "injected throttling", operation)
        if fault == "unavailable":
            raise _error("ServiceUnavailable", "injected outage", operation)
        return fault

    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        MessageGroupId: str,
        MessageDeduplicationId: str,
        MessageAttributes: dict[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        queue = self.queues[QueueUrl]
        fault = self._call("SendMessage", queue, ("throttle", "unavailable", "lost"))
        message_id = queue.send(MessageBody, MessageGroupId, MessageDeduplicationId, MessageAttributes)
        if fault == "lost":
            raise ReadTimeoutError(endpoint_url=QueueUrl)
        return {"MessageId": message_id}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        queue = self.queues[QueueUrl]
        self._call("SendMessageBatch", queue, ("throttle", "unavailable"))
        done = []
        for entry in Entries:
            queue.send(entry["MessageBody"], entry.get("MessageGroupId", ""), entry.get("MessageDeduplicationId", ""))
            done.append({"Id": entry["Id"], "MessageId": "x"})
        return {"Successful": done, "Failed": []}

    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> dict[str, Any]:
        queue = self.queues[QueueUrl]
        self._call("ChangeMessageVisibility", queue, ("throttle", "unavailable"))
        queue.change_visibility(ReceiptHandle, VisibilityTimeout)
        return {}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        queue = self.queues[QueueUrl]
        self._call("DeleteMessage", queue, ("throttle", "unavailable"))
        queue.delete(ReceiptHandle)
        return {}

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        VisibilityTimeout: int | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        queue = self.queues[QueueUrl]
        self._call("ReceiveMessage", queue, ("throttle",))
        return {"Messages": [queue.wire(m) for m in queue.receive(MaxNumberOfMessages, VisibilityTimeout)]}


class EventSourceMapping:
    """Lambda polling the FIFO queue: batches of up to 10 handed to the sender; what the sender does not report
    as failed is deleted; a failed or killed invocation leaves its batch to come back after its visibility."""

    def __init__(
        self,
        world: World,
        queue: FifoQueue,
        runtime: LambdaRuntime,
        function: str,
        batch_size: int = 10,
        concurrency: int = 5,
        name: str = "sender batch",
    ) -> None:
        self.name = name
        self.world = world
        self.queue = queue
        self.runtime = runtime
        self.function = function
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.active = 0
        self._kicks: set[float] = set()
        self.batches = 0
        self.peak_backlog: dict[str, int] = {}
        queue.on_change = self.kick_at

    def kick_at(self, when: float) -> None:
        when = max(when, self.world.now)
        if when in self._kicks:
            return
        self._kicks.add(when)

        def kick() -> None:
            self._kicks.discard(when)
            self.poll()

        self.world.at(when - self.world.now, kick)

    def poll(self) -> None:
        for group in {m.group for m in self.queue.messages}:
            backlog = sum(1 for m in self.queue.messages if m.group == group)
            self.peak_backlog[group] = max(self.peak_backlog.get(group, 0), backlog)
        while self.active < self.concurrency:
            batch = self.queue.receive(self.batch_size)
            if not batch:
                return
            self.active += 1
            self.batches += 1
            event = sqs_event([self.queue.wire(m) for m in batch], self.queue.arn)
            receipts = {m.message_id: m.receipt for m in batch}
            self.runtime.invoke(self.function, event, functools.partial(self._done, receipts=receipts), name=self.name)

    def _done(self, proc: Proc, *, receipts: dict[str, str | None]) -> None:
        self.active -= 1
        if proc.outcome == "ok":
            failed = {f["itemIdentifier"] for f in (proc.result or {}).get("batchItemFailures", [])}
            for message_id, receipt in receipts.items():
                if message_id in failed or receipt is None:
                    continue
                if self.world.chance(self.world.faults.sqs, "esm delete fails"):
                    self.world.log(f"   esm: delete of {message_id} failed  !! lost")
                    self.world.faults_injected += 1
                    continue
                try:
                    self.queue.delete(receipt)
                except ClientError:
                    self.world.log(f"   esm: delete of {message_id} refused (receipt expired)")
        self.kick_at(self.world.now)


class EventBridge:
    """The case event bus. `published` holds every entry that reached the bus, with the process that sent it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.published: list[dict[str, Any]] = []
        self.calls = 0
        self.call_times: list[float] = []
        self.on_published: Callable[[str], None] = lambda case_id: None

    def put_events(self, *, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        if len(Entries) > 10:
            raise _error("ValidationException", "at most 10 entries", "PutEvents")
        fault = self.world.step(
            f"events PutEvents {len(Entries)} entries", "events", ("throttle", "partial", "lost"), 0.01
        )
        if fault == "throttle":
            raise _error("ThrottlingException", "injected throttling", "PutEvents")
        proc = self.world.current
        assert proc is not None
        self.calls += 1
        self.call_times.append(self.world.now)
        results: list[dict[str, Any]] = []
        for index, entry in enumerate(Entries):
            if len(json.dumps(entry).encode()) > 256 * 1024:
                results.append({"ErrorCode": "ValidationException", "ErrorMessage": "entry over 256 KB"})
                continue
            if fault == "partial" and index == len(Entries) - 1:
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})
                continue
            detail = json.loads(entry["Detail"])
            self.published.append({"type": entry["DetailType"], "detail": detail, "pid": proc.pid})
            self.on_published(str(detail.get("caseId")))
            results.append({"EventId": f"bus-{len(self.published)}"})
        if fault == "lost":
            raise ReadTimeoutError(endpoint_url="https://events.us-east-1.amazonaws.com")
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}
