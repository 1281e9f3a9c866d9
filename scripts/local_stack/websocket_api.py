"""A stand-in for an API Gateway WebSocket API (the template's AWS::ApiGatewayV2::Api of ProtocolType WEBSOCKET),
invoking each route's function in this process, and its @connections management API.

What it does like API Gateway: `$connect` runs with the handshake's query string and headers, and a status
other than 2xx refuses the handshake with that status; each frame is routed by the API's
RouteSelectionExpression (`$request.body.action`) to its route, else `$default`; a route with a route response
sends the function's `body` back on the socket; closing runs `$disconnect`. `@connections/{id}`: POST sends a
frame (410 GoneException when the connection is gone, 413 PayloadTooLargeException over 128 KB, as API Gateway
refuses it), DELETE closes it, GET describes it. The WebSocket URL is
`ws://host:port/{stage}`; the @connections endpoint `http://host:port2/{stage}` (boto3's
apigatewaymanagementapi client takes it as endpoint_url).

For tests: `refuse_connections` makes new handshakes fail (503) as a network outage would, and
`close_all()` drops every open connection (code 1001), as API Gateway does when it is redeployed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from scripts.local_stack.functions import LocalFunction
from scripts.local_stack.template import WebSocketApi

MAX_FRAME_BYTES = 128 * 1024  # API Gateway's message payload size quota (a frame either way, and one post's Data)
FrameLog = Callable[[str, str, int], None]  # (connection id, route key, status)


@dataclass
class _Connection:
    connection_id: str
    source_ip: str
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    outbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    socket: ServerConnection | None = None


class LocalWebSocketApi:
    def __init__(
        self,
        api: WebSocketApi,
        functions: dict[str, LocalFunction],
        host: str = "127.0.0.1",
        port: int = 0,
        on_frame: FrameLog | None = None,
    ) -> None:
        self.api = api
        self.functions = functions
        self.host, self.port = host, port
        self.on_frame = on_frame
        self.refuse_connections = False
        self.url = ""  # ws://host:port/stage
        self.connections_url = ""  # http://host:port/stage (the @connections endpoint)
        self.ready = threading.Event()  # set by the stack once the functions' environment is complete
        self._connections: dict[str, _Connection] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._start_error: OSError | None = None
        self.posted = 0  # frames posted through @connections (the bench counts them)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> str:
        started = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, args=(started,), name="local-websocket", daemon=True)
        self._thread.start()
        if not started.wait(10) or self._server is None:
            if self._start_error is not None:  # e.g. the port is in use: the caller names it
                raise self._start_error
            raise RuntimeError("the local WebSocket API did not start")
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://{self.host}:{port}/{self.api.stage}"
        self._httpd = ThreadingHTTPServer((self.host, 0), self._management_handler())
        self._httpd.daemon_threads = True
        self.connections_url = f"http://{self.host}:{self._httpd.server_address[1]}/{self.api.stage}"
        threading.Thread(target=self._httpd.serve_forever, name="local-connections", daemon=True).start()
        return self.url

    def _run_loop(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def begin() -> None:
            try:
                self._server = await serve(
                    self._serve, self.host, self.port, process_request=self._process_request, max_size=MAX_FRAME_BYTES
                )
            except OSError as error:
                self._start_error = error
            finally:
                started.set()

        loop.run_until_complete(begin())
        if self._server is not None:
            loop.run_forever()
        loop.close()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        loop, server = self._loop, self._server
        if loop is not None and server is not None:

            async def close() -> None:
                server.close()
                await server.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = self._server = self._thread = None

    # -- what tests use --------------------------------------------------------------------------
    def connection_ids(self) -> list[str]:
        with self._lock:
            return list(self._connections)

    def forget(self, connection_id: str) -> None:
        """The connection is lost without a close (a network failure): @connections answers 410 for it from now
        on, and its $disconnect never runs (API Gateway runs it late, or, after a failure, not at all)."""
        with self._lock:
            entry = self._connections.pop(connection_id, None)
        if entry is not None and entry.socket is not None and self._loop is not None:
            entry.socket.casebridge_forgotten = True  # type: ignore[attr-defined]
            asyncio.run_coroutine_threadsafe(entry.socket.close(1011, "lost"), self._loop)

    def close_all(self) -> None:
        """Drop every open connection (code 1001 "going away"), each running $disconnect."""
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            self._close(connection.connection_id)

    # -- the socket side --------------------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        target = urlsplit(request.path)
        if target.path.rstrip("/") != f"/{self.api.stage}":
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        if self.refuse_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable\n")
        connection_id = uuid.uuid4().hex[:16]
        source_ip = str(connection.remote_address[0]) if connection.remote_address else "127.0.0.1"
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        event = self._event("$connect", "CONNECT", connection_id, source_ip)
        event["queryStringParameters"] = query or None
        event["headers"] = dict(request.headers.raw_items())
        status, _ = await self._invoke("$connect", event)
        if not 200 <= status < 300:
            return connection.respond(status, "the connection was refused\n")
        entry = _Connection(connection_id, source_ip)
        entry.socket = connection
        with self._lock:
            self._connections[connection_id] = entry
        connection.casebridge_id = connection_id  # type: ignore[attr-defined]
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        connection_id: str = connection.casebridge_id  # type: ignore[attr-defined]
        entry = self._connections.get(connection_id)
        if entry is None:
            return
        sender = asyncio.create_task(self._drain(entry, connection))
        try:
            async for message in connection:
                entry.last_active_at = time.time()
                await self._frame(entry, message if isinstance(message, str) else message.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.pop(connection_id, None)
            entry.outbox.put_nowait(None)
            await sender
            if not getattr(connection, "casebridge_forgotten", False):
                disconnect = self._event("$disconnect", "DISCONNECT", connection_id, entry.source_ip)
                await self._invoke("$disconnect", disconnect)

    async def _drain(self, entry: _Connection, connection: ServerConnection) -> None:
        """The connection's frames in the order they were posted (@connections and route responses alike)."""
        while True:
            frame = await entry.outbox.get()
            if frame is None:
                return
            try:
                await connection.send(frame)
            except ConnectionClosed:
                return

    async def _frame(self, entry: _Connection, body: str) -> None:
        route_key = self._route_key(body)
        route = self.api.routes.get(route_key) or self.api.routes.get("$default")
        if route is None:
            return
        event = self._event(route.route_key, "MESSAGE", entry.connection_id, entry.source_ip)
        event["body"] = body
        event["isBase64Encoded"] = False
        status, result = await self._invoke(route.route_key, event)
        if status >= 500 and not isinstance(result, dict):
            # What API Gateway sends when the integration failed.
            error = {"message": "Internal server error", "connectionId": entry.connection_id}
            entry.outbox.put_nowait(json.dumps(error))
        elif route.two_way and isinstance(result, dict) and result.get("body") is not None:
            entry.outbox.put_nowait(str(result["body"]))

    def _route_key(self, body: str) -> str:
        """$request.body.<field>: the frame's field as the route key, else $default."""
        field_name = self.api.selection_expression.removeprefix("$request.body.")
        try:
            parsed = json.loads(body)
        except ValueError:
            return "$default"
        value = parsed.get(field_name) if isinstance(parsed, dict) else None
        return value if isinstance(value, str) and value in self.api.routes else "$default"

    def _event(self, route_key: str, event_type: str, connection_id: str, source_ip: str) -> dict[str, Any]:
        now = time.time()
        return {
            "requestContext": {
                "routeKey": route_key,
                "eventType": event_type,
                "messageDirection": "IN",
                "connectionId": connection_id,
                "requestId": str(uuid.uuid4()),
                "extendedRequestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(now * 1000),
                "connectedAt": int(now * 1000),
                "domainName": f"{self.host}",
                "stage": self.api.stage,
                "apiId": "localws01",
                "identity": {"sourceIp": source_ip},
            },
            "isBase64Encoded": False,
        }

    async def _invoke(self, route_key: str, event: dict[str, Any]) -> tuple[int, Any]:
        route = self.api.routes.get(route_key)
        if route is None:
            return 200, None  # no such route: API Gateway lets the connection through / drops the frame
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.ready.wait, 30)
        function = self.functions[route.function_id]
        try:
            result, _ = await loop.run_in_executor(None, function.invoke, event)
        except Exception:
            status, result = 500, None
        else:
            status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
        if self.on_frame:
            self.on_frame(str(event["requestContext"]["connectionId"]), route_key, status)
        return status, result

    # -- @connections ---------------------------------------------------------------------------
    def post(self, connection_id: str, data: str) -> bool:
        with self._lock:
            entry = self._connections.get(connection_id)
        if entry is None or self._loop is None:
            return False
        self._loop.call_soon_threadsafe(entry.outbox.put_nowait, data)
        self.posted += 1
        return True

    def _close(self, connection_id: str) -> bool:
        with self._lock:
            entry = self._connections.get(connection_id)
        if entry is None or entry.socket is None or self._loop is None:
            return False
        socket = entry.socket
        asyncio.run_coroutine_threadsafe(socket.close(1001, "going away"), self._loop)
        return True

    def _describe(self, connection_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._connections.get(connection_id)
        if entry is None:
            return None
        return {
            "connectedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.connected_at)),
            "lastActiveAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.last_active_at)),
            "identity": {"sourceIp": entry.source_ip},
        }

    def _management_handler(self) -> type[BaseHTTPRequestHandler]:
        api = self
        prefix = f"/{self.api.stage}/@connections/"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any] | None = None, error_type: str = "") -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _connection_id(self) -> str | None:
                path = urlsplit(self.path).path
                return path[len(prefix) :] if path.startswith(prefix) and len(path) > len(prefix) else None

            def _gone(self) -> None:
                self._answer(410, {"message": "the connection is gone"}, "GoneException")

            def do_POST(self) -> None:
                connection_id = self._connection_id()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if connection_id is None:
                    self._answer(404, {"message": "Not Found"}, "NotFoundException")
                elif len(body) > MAX_FRAME_BYTES:
                    self._answer(413, {"message": "the frame is too large"}, "PayloadTooLargeException")
                elif api.post(connection_id, body.decode("utf-8", "replace")):
                    self._answer(200)
                else:
                    self._gone()

            def do_DELETE(self) -> None:
                connection_id = self._connection_id()
                if connection_id is not None and api._close(connection_id):
                    self._answer(204)
                else:
                    self._gone()

            def do_GET(self) -> None:
                connection_id = self._connection_id()
                described = api._describe(connection_id) if connection_id else None
                if described is None:
                    self._gone()
                else:
                    self._answer(200, described)

        return Handler
