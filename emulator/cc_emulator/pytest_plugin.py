"""Pytest fixtures: `emulator` (a started EmulatorServer with fast timings) and `webhook_receiver`.

Use from a conftest.py: `from cc_emulator.pytest_plugin import emulator, emulator_config, webhook_receiver`
(or `pytest_plugins = ["cc_emulator.pytest_plugin"]` in the root conftest).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from .config import EmulatorConfig, default_topology, fast_timings
from .http_base import LocalHTTPServer, MethodHandler
from .loop import WaitableLog
from .server import EmulatorServer


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    time: float
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_type(self) -> str | None:
        try:
            value = self.json().get("eventType")
        except (ValueError, AttributeError):
            return None
        return str(value) if value is not None else None


@dataclass
class WebhookReceiver(WaitableLog[ReceivedRequest]):
    """A real local HTTP server recording every POST. Answers `statuses` in order, then `default_status`."""

    log_subject = "webhook"

    host: str = "127.0.0.1"
    default_status: int = 200
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[ReceivedRequest] = field(default_factory=list)
    # Optional per-request decision: return a status code, or None to fall back to the rules above.
    responder: Callable[[ReceivedRequest], int | None] | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: LocalHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        receiver = self

        class _Handler(MethodHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self, method: str) -> None:
                body = self._read_body()
                if method != "POST":
                    self._write(405, b"", {"Allow": "POST"})
                    return
                rec = ReceivedRequest(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(), 0
                )
                status = receiver._decide(rec)
                rec.status = status
                if receiver.delay:
                    receiver._release.wait(receiver.delay)
                with receiver._cond:
                    receiver.requests.append(rec)
                    receiver._cond.notify_all()
                self._write(status, b"", {})

        self._server = LocalHTTPServer((self.host, 0), _Handler)
        self._server.serve_in_background("webhook-receiver")
        return self.url

    def _decide(self, rec: ReceivedRequest) -> int:
        with self._cond:
            if self.responder is not None:
                chosen = self.responder(rec)
                if chosen is not None:
                    return chosen
            if self.statuses:
                return self.statuses.pop(0)
            return self.default_status

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "receiver not started"
        return self._server.base_url + "/webhook"

    def _log(self) -> list[ReceivedRequest]:
        return self.requests

    def events(self, event_type: str | None = None, ok_only: bool = False) -> list[ReceivedRequest]:
        with self._cond:
            return [
                r
                for r in self.requests
                if (event_type is None or r.event_type == event_type) and (not ok_only or 200 <= r.status < 300)
            ]

    def wait_for_events(
        self, event_type: str, count: int = 1, timeout: float = 5.0, conversation_id: str | None = None
    ) -> list[ReceivedRequest]:
        def select(reqs: list[ReceivedRequest]) -> list[ReceivedRequest]:
            return [
                r
                for r in reqs
                if r.event_type == event_type
                and (conversation_id is None or r.json().get("conversationId") == conversation_id)
            ]

        return self.wait_for_count(select, count, timeout)

    def event_types(self, conversation_id: str | None = None, ok_only: bool = True) -> list[str]:
        """Distinct-by-event-id event types in arrival order (retries and duplicates collapsed)."""
        seen: set[str] = set()
        types: list[str] = []
        for r in self.events(ok_only=ok_only):
            eid = r.headers.get("x-8x8-event-id", "")
            body = r.json()
            if conversation_id is not None and body.get("conversationId") != conversation_id:
                continue
            if eid in seen:
                continue
            seen.add(eid)
            types.append(str(body.get("eventType")))
        return types


def make_test_config(**overrides: Any) -> EmulatorConfig:
    queues, agents = default_topology()
    cfg = EmulatorConfig(port=0, queues=queues, agents=agents, timings=fast_timings())
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Override in a conftest to change topology or timings for the `emulator` fixture."""
    return make_test_config()


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    server = EmulatorServer(emulator_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
