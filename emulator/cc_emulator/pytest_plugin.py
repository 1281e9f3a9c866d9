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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .config import EmulatorConfig, default_topology, fast_timings
from .http_base import LISTEN_BACKLOG
from .loop import wait_on
from .server import EmulatorServer


class ReceiverHTTPServer(ThreadingHTTPServer):
    """The receiver's server: a realistic listen backlog, so a burst of deliveries is not refused."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG


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
class WebhookReceiver:
    """A real local HTTP server recording every POST. Answers `statuses` in order, then `default_status`."""

    host: str = "127.0.0.1"
    default_status: int = 200
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[ReceivedRequest] = field(default_factory=list)
    # Optional per-request decision: return a status code, or None to fall back to the rules above.
    responder: Callable[[ReceivedRequest], int | None] | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: ReceiverHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
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
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ReceiverHTTPServer((self.host, 0), _Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
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
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "receiver not started"
        host, port = str(self._server.server_address[0]), int(self._server.server_address[1])
        return f"http://{host}:{port}/webhook"

    def events(self, event_type: str | None = None, ok_only: bool = False) -> list[ReceivedRequest]:
        with self._cond:
            return [
                r
                for r in self.requests
                if (event_type is None or r.event_type == event_type) and (not ok_only or 200 <= r.status < 300)
            ]

    def wait_for(self, predicate: Callable[[list[ReceivedRequest]], Any], timeout: float = 5.0) -> Any:
        return wait_on(
            self._cond,
            lambda: predicate(list(self.requests)),
            timeout,
            lambda: f"webhook condition not met within {timeout}s; got {len(self.requests)}",
        )

    def wait_for_events(
        self, event_type: str, count: int = 1, timeout: float = 5.0, conversation_id: str | None = None
    ) -> list[ReceivedRequest]:
        def enough(reqs: list[ReceivedRequest]) -> list[ReceivedRequest] | None:
            found = [
                r
                for r in reqs
                if r.event_type == event_type
                and (conversation_id is None or r.json().get("conversationId") == conversation_id)
            ]
            return found if len(found) >= count else None

        result: list[ReceivedRequest] = self.wait_for(enough, timeout)
        return result

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
