"""Surface-neutral HTTP plumbing: requests, responses, routing tables, fault application, and the local servers'
shape (backlog, background thread, one handler for every method, static files)."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .engine import NotFound
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


Handler = Callable[[Request], Response]
# (method, path under the API's prefix, operation name, handler): a surface wraps each in its auth and errors.
RouteSpec = tuple[str, str, str, Handler]


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


def mount(
    surface: Surface,
    prefix: str,
    specs: Iterable[RouteSpec],
    wrap: Callable[[Handler, str], Handler],
    faultable: bool = True,
) -> list[Route]:
    """A surface's table of routes under `prefix`, each handler wrapped for its operation (auth, error shapes)."""
    return [
        route(surface, method, prefix + path, op, wrap(handler, op), faultable) for method, path, op, handler in specs
    ]


# A real 8x8 does not refuse connections under a burst; the standard library's backlog of 5 does
# (dropped SYNs are retried after a second), so every local server uses this one.
LISTEN_BACKLOG = 128


class LocalHTTPServer(ThreadingHTTPServer):
    """Every local server's shape (the emulator, the chat page, the test webhook receiver): a thread per request,
    the backlog above, served from a daemon thread until `close()`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        # Set on close, so hanging responses, latency and open streams end at once.
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(address, handler)

    @property
    def base_url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_in_background(self, name: str, poll_interval: float = 0.05) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self._thread is not None:  # shutdown() waits for a serve_forever that must have started
            self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class MethodHandler(BaseHTTPRequestHandler):
    """Every HTTP method goes to one `_handle(method)`, which routes by a table; plus reading and writing a body."""

    def _handle(self, method: str) -> None:
        raise NotImplementedError

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

    def _read_body(self, max_bytes: int | None = None) -> bytes:
        """The request body; ValueError for a bad Content-Length or one over `max_bytes`."""
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("bad Content-Length")
        if max_bytes is not None and length > max_bytes:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _write(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


# Browser helpers the emulator's agent desk and the local chat page share (DOM building, JSON calls).
SHARED_STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def static_file(name: str, *folders: Path) -> Response | None:
    """The file `name` from the first of `folders` that has it, or None. `name` is one path segment: no
    sub-folders, no dot files, only the types above."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    for folder in folders:
        path = folder / name
        if path.suffix in STATIC_TYPES and path.is_file():
            headers = {"Content-Type": STATIC_TYPES[path.suffix], "Cache-Control": "no-cache"}
            return Response(200, path.read_bytes(), {**headers, "X-Content-Type-Options": "nosniff"})
    return None


class EmulatorHTTPServer(LocalHTTPServer):
    def __init__(self, address: tuple[str, int], engine: Engine, surfaces: list[Surface], verbose: bool = False):
        self.engine = engine
        self.surfaces = surfaces
        self.routes = [r for s in surfaces for r in s.routes()]
        self.verbose = verbose
        super().__init__(address, RequestHandler)


class RequestHandler(MethodHandler):
    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "cc-emulator/1"
    # One write per answer, Nagle off: in two writes a kept-alive client waited ~40 ms (delayed ACK) for the body.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        body = self._read_body()
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
        self._write(resp.status, resp.body, resp.headers)
