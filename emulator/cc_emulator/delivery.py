"""Webhook delivery: background workers (several conversations at once, each conversation in order) with
at-least-once retries, faults and an attempt log."""

from __future__ import annotations

import heapq
import itertools
import json
import secrets
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

import requests

from .config import EmulatorConfig
from .faults import FaultManager
from .loop import ConditionLoop, WaitableLog, wait_on
from .signing import KeyStore, b64url, signature_payload

R = TypeVar("R")
DELIVERY_LANES = 4


def new_event_id() -> str:
    return b64url(secrets.token_bytes(16))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    uri: str
    # Serialised once: every retry resends the same bytes, so the checksum stays stable.
    body: bytes
    conversation_id: str | None = None
    webhook_id: str | None = None

    @staticmethod
    def build(
        event_type: str,
        uri: str,
        payload: dict[str, Any],
        conversation_id: str | None = None,
        webhook_id: str | None = None,
    ) -> Event:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return Event(new_event_id(), event_type, uri, body, conversation_id, webhook_id)


@dataclass
class DeliveryRecord:
    """One delivery attempt as seen by the emulator."""

    seq: int
    event_id: str
    event_type: str
    conversation_id: str | None
    webhook_id: str | None
    uri: str
    retry: int
    transmission_time: int
    status: int | None
    error: str | None
    time: float
    duration_ms: float
    duplicate: bool = False
    bad_signature: bool = False
    out_of_order: bool = False
    # "delivered", "retrying" or "gave_up".
    outcome: str = "delivered"
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeliveryQuery:
    """Which logged attempts a caller asks about (the control API's eventType, conversationId, ok and since)."""

    event_type: str | None = None
    conversation_id: str | None = None
    ok_only: bool = False
    since: int = 0  # attempts logged after this sequence number

    def select(self, records: list[DeliveryRecord]) -> list[DeliveryRecord]:
        return [
            r
            for r in records
            if r.seq > self.since
            and (self.event_type is None or r.event_type == self.event_type)
            and (self.conversation_id is None or r.conversation_id == self.conversation_id)
            and (not self.ok_only or r.ok)
        ]

    def params(self) -> dict[str, str | int | None]:
        """As the control API's query string (None: left out)."""
        return {
            "eventType": self.event_type,
            "conversationId": self.conversation_id,
            "ok": "true" if self.ok_only else None,
            "since": self.since or None,
        }


class DeliveryLogView(ABC, Generic[R]):
    """The delivery log's two questions, asked in-process (EmulatorServer, records) or over the control API
    (ControlClient, dicts): their filters and defaults are defined here once."""

    @abstractmethod
    def _select(self, query: DeliveryQuery) -> list[R]: ...

    @abstractmethod
    def _wait(self, query: DeliveryQuery, count: int, timeout: float) -> list[R]: ...

    def deliveries(
        self, event_type: str | None = None, conversation_id: str | None = None, ok_only: bool = False
    ) -> list[R]:
        return self._select(DeliveryQuery(event_type, conversation_id, ok_only))

    def wait_for_deliveries(
        self,
        event_type: str | None = None,
        conversation_id: str | None = None,
        count: int = 1,
        ok_only: bool = True,
        timeout: float = 5.0,
    ) -> list[R]:
        """Block until `count` matching attempts are logged; returns them, or raises TimeoutError."""
        return self._wait(DeliveryQuery(event_type, conversation_id, ok_only), count, timeout)


@dataclass
class _Job:
    event: Event
    retry: int = 0
    duplicate: bool = False
    bad_signature: bool = False
    out_of_order: bool = False


class DeliveryWorker(ConditionLoop, WaitableLog[DeliveryRecord]):
    log_subject = "delivery"

    def __init__(self, keys: KeyStore, config: EmulatorConfig, faults: FaultManager) -> None:
        self.keys = keys
        # The tenant the signatures name, and the delivery timings.
        self.config = config
        self.faults = faults
        super().__init__("cc-emulator-delivery")
        self._heap: list[tuple[float, int, _Job]] = []
        self._held: list[tuple[float, _Job]] = []
        self._seq = itertools.count()
        self._records: list[DeliveryRecord] = []
        self._record_seq = itertools.count(1)
        self._in_flight = 0
        self._generation = 0
        self._session = requests.Session()
        # Several deliveries at once, as 8x8 sends them; one conversation's events still go one after another.
        self._sending: set[str | None] = set()  # the conversations with a delivery on the wire
        self._lanes = [
            threading.Thread(target=self._run, name=f"cc-emulator-delivery-{n}", daemon=True)
            for n in range(2, DELIVERY_LANES + 1)
        ]

    def start(self) -> None:
        super().start()
        for lane in self._lanes:
            lane.start()

    def stop(self) -> None:
        self._stop_thread(self.config.timings.delivery_timeout + 1)
        for lane in self._lanes:
            lane.join(timeout=self.config.timings.delivery_timeout + 1)
        self._session.close()

    def reset(self) -> None:
        with self._cond:
            self._heap.clear()
            self._held.clear()
            self._records.clear()
            # Attempts already on the wire belong to the old generation and are not logged.
            self._generation += 1
            self._cond.notify_all()

    # -- submission -------------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        kinds = self.faults.take_delivery(event.event_type)
        job = _Job(event, bad_signature="bad_signature" in kinds)
        with self._cond:
            if "out_of_order" in kinds:
                job.out_of_order = True
                self._held.append((time.monotonic() + self.config.timings.out_of_order_max_hold, job))
            else:
                self._push(0.0, job)
                if "duplicate" in kinds:
                    self._push(0.0, _Job(event, duplicate=True))
                # Held events go out right after the one that overtook them.
                for _, held in self._held:
                    self._push(0.0, held)
                self._held.clear()
            self._cond.notify_all()

    def _push(self, delay: float, job: _Job) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))

    # -- worker -----------------------------------------------------------------------------

    def _next_job(self) -> tuple[_Job, int] | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                due_held = [h for h in self._held if h[0] <= now]
                if due_held:
                    self._held = [h for h in self._held if h[0] > now]
                    for _, job in due_held:
                        self._push(0.0, job)
                free = [e for e in self._heap if e[2].event.conversation_id not in self._sending]
                first = min(free) if free else None
                if first is not None and first[0] <= now:
                    self._heap.remove(first)
                    heapq.heapify(self._heap)
                    self._sending.add(first[2].event.conversation_id)
                    self._in_flight += 1
                    return first[2], self._generation
                wakeups = [h[0] for h in self._held]
                if first is not None:
                    wakeups.append(first[0])
                self._cond.wait(timeout=(min(wakeups) - now) if wakeups else None)
            return None

    def _run(self) -> None:
        while True:
            item = self._next_job()
            if item is None:
                return
            job, generation = item
            try:
                self._attempt(job, generation)
            finally:
                with self._cond:
                    self._sending.discard(job.event.conversation_id)
                    self._in_flight -= 1
                    self._cond.notify_all()

    def headers_for(self, event: Event, retry: int, bad_signature: bool = False) -> dict[str, str]:
        tt = now_ms()
        key = self.keys.active
        body = event.body
        if bad_signature:
            # Well-formed JWS over the wrong checksum: only a real verification catches it.
            body = event.body + b" "
        tenant_id, customer_id = self.config.tenant_id, self.config.customer_id
        sig = key.sign_detached(signature_payload(body, customer_id, event.event_id, retry, tenant_id, tt))
        return {
            "Content-Type": "application/json",
            "x-8x8-signature": sig,
            "x-8x8-event-id": event.event_id,
            "x-8x8-retry": str(retry),
            "x-8x8-transmission-time": str(tt),
            "x-8x8-tenant-id": tenant_id,
            "x-8x8-customer-id": customer_id,
        }

    def send_once(self, job_event: Event, retry: int = 0, bad_signature: bool = False) -> DeliveryRecord:
        """One POST; returns its record (not yet logged)."""
        headers = self.headers_for(job_event, retry, bad_signature)
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            resp = self._session.post(
                job_event.uri, data=job_event.body, headers=headers, timeout=self.config.timings.delivery_timeout
            )
            status = resp.status_code
        except requests.Timeout:
            error = "timeout"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        return DeliveryRecord(
            seq=0,
            event_id=job_event.event_id,
            event_type=job_event.event_type,
            conversation_id=job_event.conversation_id,
            webhook_id=job_event.webhook_id,
            uri=job_event.uri,
            retry=retry,
            transmission_time=int(headers["x-8x8-transmission-time"]),
            status=status,
            error=error,
            time=time.time(),
            duration_ms=round((time.monotonic() - started) * 1000, 2),
            bad_signature=bad_signature,
            body=json.loads(job_event.body),
        )

    def _attempt(self, job: _Job, generation: int) -> None:
        record = self.send_once(job.event, job.retry, job.bad_signature)
        record.duplicate = job.duplicate
        record.out_of_order = job.out_of_order
        retry_next = not record.ok and job.retry + 1 < self.config.timings.max_attempts
        if not record.ok:
            record.outcome = "retrying" if retry_next else "gave_up"
        with self._cond:
            if generation != self._generation or self._stopping:
                return
            if retry_next:
                delay = min(self.config.timings.retry_base_delay * (2**job.retry), self.config.timings.retry_max_delay)
                self._push(delay, _Job(job.event, retry=job.retry + 1, duplicate=job.duplicate))
            self.log(record)

    def log(self, record: DeliveryRecord) -> None:
        with self._cond:
            record.seq = next(self._record_seq)
            self._records.append(record)
            self._cond.notify_all()

    # -- inspection -------------------------------------------------------------------------

    def records(self) -> list[DeliveryRecord]:
        with self._cond:
            return list(self._records)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + len(self._held) + self._in_flight

    def _log(self) -> list[DeliveryRecord]:
        return self._records

    def wait_idle(self, timeout: float = 5.0) -> None:
        wait_on(
            self._cond,
            lambda: not (self._heap or self._held or self._in_flight),
            timeout,
            lambda: f"deliveries still pending after {timeout}s",
        )
