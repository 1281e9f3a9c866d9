"""The business's side: a subscriber to the case event bus, as a real channel would be (an EventBridge rule on
the bus targeting a queue the channel reads). Here the rule and queue live in moto and a thread reads them: a
long poll that moto ends as soon as an event lands (scripts/local_stack/moto_process.py), up to ten events a
read, deleted together once handled."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class ChannelEvent:
    """One case event as the business receives it from EventBridge."""

    detail_type: str
    source: str
    detail: dict[str, Any]
    received: float
    # The bus delivers at least once: a repeat carries an eventId already seen, and a channel drops it.
    repeat: bool = False

    @property
    def case_id(self) -> str | None:
        value = self.detail.get("caseId")
        return str(value) if value is not None else None

    def describe(self) -> str:
        d = self.detail
        parts = [self.detail_type]
        if d.get("queueName") or d.get("queueId"):
            parts.append(f"queue={d.get('queueName') or d.get('queueId')}")
        if d.get("agentName") or d.get("agentId"):
            parts.append(f"agent={d.get('agentName') or d.get('agentId')}")
        if d.get("text"):
            parts.append(f"text={d['text']!r}")
        if d.get("reason"):
            parts.append(f"reason={d['reason']!r}")
        return " ".join(parts)


EventCallback = Callable[[ChannelEvent], None]


@dataclass
class BusinessChannel:
    sqs: SQSClient
    events: EventBridgeClient
    bus_name: str
    name: str
    on_event: EventCallback | None = None
    queue_url: str = ""
    received: list[ChannelEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _by_case: dict[str | None, list[ChannelEvent]] = field(default_factory=dict)
    _seen_event_ids: set[Any] = field(default_factory=set)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.queue_url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(
            Name=self.name,
            EventBusName=self.bus_name,
            EventPattern=json.dumps({"source": ["casebridge"]}),
            State="ENABLED",
            Description="the business channel's subscription to its case events",
        )
        self.events.put_targets(Rule=self.name, EventBusName=self.bus_name, Targets=[{"Id": "channel", "Arn": arn}])
        self._thread = threading.Thread(target=self._run, name="business-channel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                messages = answer.get("Messages", [])
                for message in messages:
                    self._take(message["Body"])
                if messages:
                    self.sqs.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                    )
            except Exception as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                self._stop.wait(0.5)

    def _take(self, body: str) -> None:
        """One event: kept, waiters woken, the callback told (its failure is reported; the event stays taken)."""
        envelope = json.loads(body)
        event = ChannelEvent(
            detail_type=str(envelope.get("detail-type")),
            source=str(envelope.get("source")),
            detail=dict(envelope.get("detail") or {}),
            received=time.time(),
        )
        event_id = event.detail.get("eventId")
        with self._cond:
            self.received.append(event)
            if event_id is not None and event_id in self._seen_event_ids:
                event = replace(event, repeat=True)
            else:
                self._seen_event_ids.add(event_id)
                self._by_case.setdefault(event.case_id, []).append(event)
            self._cond.notify_all()
        if self.on_event:
            try:
                self.on_event(event)
            except Exception as error:
                self.errors.append(f"on_event: {type(error).__name__}: {error}")

    def events_for(self, case_id: str, detail_type: str | None = None) -> list[ChannelEvent]:
        with self._cond:
            return [e for e in self._by_case.get(case_id, []) if detail_type is None or e.detail_type == detail_type]

    def wait_for(
        self,
        case_id: str,
        detail_type: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[ChannelEvent], bool] | None = None,
    ) -> list[ChannelEvent]:
        """Block until `count` events of this type for the case arrived; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events_for(case_id, detail_type) if where is None or where(e)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [e.detail_type for e in self.events_for(case_id)]
                    raise TimeoutError(
                        f"the channel got {len(found)} of {count} {detail_type} event(s) for case {case_id} "
                        f"within {timeout:g}s; it saw {seen}"
                    )
                self._cond.wait(remaining)
