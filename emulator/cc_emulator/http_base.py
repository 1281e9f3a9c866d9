"""Surface-neutral HTTP plumbing: requests, responses, routing, fault application."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .engine import NotFound, Validation, ValidationFailed
from .faults import FaultRule

if TYPE_CHECKING:
    from email.message import Message as HeaderMap

    from .engine import Engine


class BadRequest(Exception):
    pass


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: HeaderMap
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        if not self.body:
            raise BadRequest("request body is empty")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from exc

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # "drop": close without answering; "reset": TCP reset.
    action: str | None = None

    @staticmethod
    def json(status: int, obj: Any, content_type: str = "application/json") -> Response:
        return Response(status, json.dumps(obj).encode("utf-8"), {"Content-Type": content_type})

    @staticmethod
    def empty(status: int) -> Response:
        return Response(status)


class JsonBody:
    """Collects validations while reading a JSON object body (shared by the API surfaces)."""

    # The gateway takes numeric ids as strings; Chat API v2 does not.
    numbers_as_strings = False

    def __init__(self, req: Request, allow_empty: bool = False) -> None:
        data = {} if allow_empty and not req.body else req.json()
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object")
        self.data: dict[str, Any] = data
        self.problems: list[Validation] = []

    def fail(self, field: str, value: Any, code: str, message: str) -> None:
        self.problems.append(Validation(field, "" if value is None else str(value)[:200], code, message))

    def optional_string(
        self,
        field: str,
        required: bool = True,
        max_len: int | None = None,
        src: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> str | None:
        """The string at `field`, or None (with a validation recorded when it is required or malformed)."""
        src = self.data if src is None else src
        label = label or field
        value = src.get(field)
        if value is None:
            if required:
                self.fail(label, None, "not_null", "must not be null")
            return None
        if self.numbers_as_strings and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(label, value, "invalid_value", "must be a non-empty string")
            return None
        if max_len is not None and len(value) > max_len:
            self.fail(label, value, "max_length", f"must be at most {max_len} characters")
        return value

    def history_messages(self, max_messages: int, too_many: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(label, item) for each object in `history.messages`, failing a bad list or a non-object item."""
        raw = self.data.get("history")
        if raw is None:
            return
        messages = raw.get("messages") if isinstance(raw, dict) else None
        if not isinstance(messages, list):
            self.fail("history.messages", None, "not_null", "must be an array")
            return
        if len(messages) > max_messages:
            self.fail("history.messages", len(messages), "max_size", too_many)
        for n, item in enumerate(messages):
            label = f"history.messages[{n}]"
            if isinstance(item, dict):
                yield label, item
            else:
                self.fail(label, item, "invalid_value", "must be an object")

    def check(self) -> None:
        if self.problems:
            raise ValidationFailed(self.problems)


class SharedHandlers:
    """Handlers that Chat API v2 and Chat Gateway v1 answer alike."""

    body_type: type[JsonBody]
    verify_failure: str  # the start of the 400's message when verification fails

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def delete_webhook(self, req: Request) -> Response:
        self.engine.delete_webhook(req.params["id"])
        return Response.empty(204)

    def delete_channel(self, req: Request) -> Response:
        self.engine.delete_channel(req.params["id"])
        return Response.empty(204)

    def webhook_version(self, body: JsonBody) -> str:
        """The `version` of a verify request, as this surface validates it."""
        raise NotImplementedError

    def verify_webhook(self, req: Request) -> Response:
        """Sends WEB_HOOK_VERIFY to `uri`: 204 on a 2xx, else a 400 naming the outcome."""
        body = self.body_type(req)
        version = self.webhook_version(body)
        uri = http_uri(body, "uri")
        body.check()
        record = self.engine.verify_webhook_uri(uri, version)
        if not record.ok:
            outcome = record.error or f"HTTP {record.status}"
            failure = f"{self.verify_failure} ({outcome})"
            raise ValidationFailed([Validation("uri", uri, "webhook_verification_failed", failure)])
        return Response.empty(204)


def http_uri(body: JsonBody, field: str) -> str:
    uri = body.optional_string(field) or ""
    if uri:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            body.fail(field, uri, "invalid_uri", "must be an absolute http(s) URI")
    return uri


Handler = Callable[[Request], Response]


def error_json(status: int, message: str) -> Response:
    """The emulator's own APIs (control, desk) answer errors as {"error": message}."""
    return Response.json(status, {"error": message})


Errors = tuple[type[Exception], ...]


def answer_errors(handler: Handler, conflict: Errors, invalid: Errors = (), other: Errors = ()) -> Handler:
    """Wraps a control/desk handler: NotFound is 404, `conflict` 409, `invalid` and `other` 400
    (`invalid` names the exception type in the message)."""

    def wrapped(req: Request) -> Response:
        try:
            return handler(req)
        except NotFound as exc:
            return error_json(404, str(exc))
        except conflict as exc:
            return error_json(409, str(exc))
        except invalid as exc:
            return error_json(400, f"{type(exc).__name__}: {exc}")
        except other as exc:
            return error_json(400, str(exc))

    return wrapped


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    op: str
    handler: Handler
    surface: Surface
    faultable: bool = True


class Surface(Protocol):
    """One HTTP API over the engine (Chat API v2, the control API, later Chat Gateway v1)."""

    name: str

    def routes(self) -> list[Route]: ...

    def fault_response(self, op: str, rule: FaultRule) -> Response: ...

    def not_found(self, req: Request) -> Response | None: ...


def route(surface: Surface, method: str, path: str, op: str, handler: Handler, faultable: bool = True) -> Route:
    """`path` uses {name} placeholders for one path segment each."""
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"
    return Route(method, re.compile(regex), op, handler, surface, faultable)


# A real 8x8 does not refuse connections under a burst; the standard library's backlog of 5 does
# (dropped SYNs are retried after a second), so every local server uses this one.
LISTEN_BACKLOG = 128


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], engine: Engine, surfaces: list[Surface], verbose: bool = False):
        self.engine = engine
        self.surfaces = surfaces
        self.routes = [r for s in surfaces for r in s.routes()]
        self.verbose = verbose
        # Set on stop so hanging responses and latency end at once.
        self.stopping = threading.Event()
        super().__init__(address, RequestHandler)


class RequestHandler(BaseHTTPRequestHandler):
    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "cc-emulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(method, split.path, parse_qs(split.query), self.headers, body)
        match = self._match(req)
        if match is None:
            resp = self._not_found(req)
            self._send(resp)
            return
        rt, params = match
        req.params = params
        engine = self.server.engine
        fault_name: str | None = None
        rule: FaultRule | None = None
        if rt.faultable:
            latency, rule = engine.faults.take_api(rt.op)
            if latency:
                self.server.stopping.wait(latency)
            fault_name = rule.kind if rule else ("latency" if latency else None)
        if rule is not None and rule.kind == "status":
            resp = rt.surface.fault_response(rt.op, rule)
        elif rule is not None and rule.kind == "hang":
            self.server.stopping.wait(rule.seconds)
            resp = Response(0, action="drop")
        elif rule is not None and rule.kind == "reset":
            resp = Response(0, action="reset")
        else:
            resp = rt.handler(req)
            if rule is not None and rule.kind == "accept_then_fail":
                resp = rt.surface.fault_response(rt.op, rule)
            elif rule is not None and rule.kind == "accept_then_drop":
                resp = Response(0, action="drop")
        engine.log_request(rt.op, method, split.path, resp.status or None, fault_name, rt.surface.name)
        self._send(resp)

    def _match(self, req: Request) -> tuple[Route, dict[str, str]] | None:
        for rt in self.server.routes:
            if rt.method != req.method:
                continue
            m = rt.pattern.match(req.path)
            if m:
                return rt, m.groupdict()
        return None

    def _not_found(self, req: Request) -> Response:
        for surface in self.server.surfaces:
            resp = surface.not_found(req)
            if resp is not None:
                return resp
        return Response.json(404, {"message": "Not found", "errors": [f"No route for {req.method} {req.path}"]})

    def _send(self, resp: Response) -> None:
        if resp.action == "drop":
            self.close_connection = True
            return
        if resp.action == "reset":
            self.close_connection = True
            # Linger 0 makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if resp.body and self.command != "HEAD":
            self.wfile.write(resp.body)
