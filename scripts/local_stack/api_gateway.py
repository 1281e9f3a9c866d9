"""A Docker-free stand-in for `sam local start-api`: API Gateway (REST API, Lambda proxy integration) over
the template's `Type: Api` events, invoking each function's real handler in this process.

What it does like API Gateway: the stage prefix, path templates with {params} (routed on the path as sent, so
an encoded slash "%2F" stays inside its segment), the x-api-key check of routes with ApiKeyRequired, "Missing
Authentication Token" for unknown routes, the version 1.0 proxy event (`path` percent-encoded as sent,
`pathParameters` decoded, binary bodies base64-encoded), chunked request bodies, the proxy result turned back
into HTTP, 502 when the function fails, and the template's GatewayResponses applied to the answers the gateway
itself makes.

Where it is stricter than API Gateway: a body declared as text (JSON, XML, text/*) that is not valid UTF-8
reaches the function base64-encoded with isBase64Encoded=true, the bytes exactly as sent. REST API Gateway,
for a media type that is not in the API's binaryMediaTypes, decodes the body as UTF-8 and substitutes U+FFFD
for invalid bytes, so the function cannot tell the body was damaged; passing the bytes lets casebridge refuse
it (400, "not valid JSON") instead of accepting altered text.
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from scripts.local_stack.functions import LocalFunction
from scripts.local_stack.template import ApiRoute, Template, TemplateError

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# A realistic listen backlog: the standard library's default of 5 drops connections under a burst (the client
# retries its SYN only after a second), which API Gateway never does.
LISTEN_BACKLOG = 128
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_MAX_LINE = 8192
_TEXT_TYPES = re.compile(r"^(text/.*|application/(.+\+)?(json|xml|javascript|x-www-form-urlencoded)|)$")


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    headers: dict[str, list[str]]
    body: bytes


RequestLog = Callable[[str, str, int, float], None]


class BadRequestBody(Exception):
    """The request's framing (Content-Length, Transfer-Encoding, chunks) cannot be read."""

    def __init__(self, status: int, response_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.response_type = response_type
        self.message = message


class GatewayHTTPServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def read_chunked(stream: io.BufferedIOBase, limit: int) -> bytes:
    """A Transfer-Encoding: chunked body (RFC 9112 7.1): hex sizes, optional extensions, trailers ignored."""
    body = bytearray()
    while True:
        line = stream.readline(_MAX_LINE + 1)
        match = _CHUNK_SIZE_LINE.fullmatch(line)
        if match is None:
            raise BadRequestBody(400, "BAD_REQUEST_BODY", "Malformed chunked request body")
        size = int(match.group(1), 16)
        if size == 0:
            break
        if len(body) + size > limit:
            raise BadRequestBody(413, "REQUEST_TOO_LARGE", "Request Too Long")
        chunk = stream.read(size)
        if len(chunk) != size or stream.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n"):
            raise BadRequestBody(400, "BAD_REQUEST_BODY", "Malformed chunked request body")
        body += chunk
    while True:  # trailer fields, up to the empty line
        line = stream.readline(_MAX_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            return bytes(body)
        if len(line) > _MAX_LINE:
            raise BadRequestBody(400, "BAD_REQUEST_BODY", "Malformed chunked request body")


def read_body(headers: Message, stream: io.BufferedIOBase, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, framed by Transfer-Encoding: chunked or by Content-Length (RFC 9112 6.3)."""
    codings = [c.strip().lower() for v in headers.get_all("Transfer-Encoding") or [] for c in v.split(",")]
    if codings:
        # Chunked must be the last coding; other codings are not something API Gateway decodes either.
        if codings != ["chunked"]:
            raise BadRequestBody(501, "BAD_REQUEST_BODY", "Unsupported Transfer-Encoding")
        return read_chunked(stream, limit)
    lengths = {v.strip() for v in headers.get_all("Content-Length") or []}
    if not lengths:
        return b""
    if len(lengths) != 1 or not re.fullmatch(r"[0-9]{1,12}", next(iter(lengths))):
        raise BadRequestBody(400, "BAD_REQUEST_BODY", "Invalid Content-Length")
    length = int(next(iter(lengths)))
    if length > limit:
        raise BadRequestBody(413, "REQUEST_TOO_LARGE", "Request Too Long")
    body = stream.read(length) if length else b""
    if len(body) != length:
        raise BadRequestBody(400, "BAD_REQUEST_BODY", "Incomplete request body")
    return body


def is_text(content_type: str | None) -> bool:
    """Bodies of these types reach the function as text; any other type arrives base64-encoded."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return bool(_TEXT_TYPES.match(media))


class LocalApi:
    def __init__(
        self,
        template: Template,
        functions: dict[str, LocalFunction],
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: RequestLog | None = None,
    ) -> None:
        self.template = template
        self.functions = functions
        self.routes = template.api_routes()
        api_ids = {r.api_id for r in self.routes}
        if len(api_ids) > 1:
            raise TemplateError(f"the local API serves one RestApi; the template routes to {sorted(map(str, api_ids))}")
        self.api_id = next(iter(api_ids), None)
        self.stage = template.api_stage(self.api_id)
        self.api_key = api_key or f"local-{secrets.token_urlsafe(18)}"
        self.api_key_id = "localkey01"
        self.rest_api_id = "localapi01"
        self.gateway_responses = template.gateway_responses(self.api_id)
        self.host = host
        self.port = port
        self.on_request = on_request
        # Requests wait here until the functions' environment is complete (the stack sets it after start).
        self.ready = threading.Event()
        self._httpd: GatewayHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "local-api-gateway"
            # The status line, headers and body leave in one write (flushed after each request), with Nagle off:
            # written in two parts, the body waited for the client's delayed ACK of the headers on a kept-alive
            # connection, about 40 ms per request, which API Gateway does not add.
            wbufsize = -1
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                started = time.monotonic()
                try:
                    body = read_body(self.headers, self.rfile)
                except BadRequestBody as error:
                    # What is left of the body cannot be told from the next request: answer and hang up.
                    self.close_connection = True
                    answer = api.gateway_error(error.response_type, error.status, error.message, str(uuid.uuid4()))
                else:
                    headers = [(k, v) for k, v in self.headers.items()]
                    answer = api.handle(self.command, self.path, headers, body, self.client_address[0])
                self.send_response(answer.status)
                for name, values in answer.headers.items():
                    for value in values:
                        self.send_header(name, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)
                if api.on_request:
                    api.on_request(self.command, self.path, answer.status, (time.monotonic() - started) * 1000)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

        self._httpd = GatewayHTTPServer((self.host, self.port), Handler)
        host, port = str(self._httpd.server_address[0]), int(self._httpd.server_address[1])
        self.base_url = f"http://{host}:{port}/{self.stage}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-api", daemon=True)
        self._thread.start()
        return self.base_url

    @property
    def httpd(self) -> GatewayHTTPServer | None:
        """The listening server while started (tests check its backlog)."""
        return self._httpd

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- one request ---------------------------------------------------------------------------

    def find_route(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        # Literal segments beat parameters, as in API Gateway: try the most specific templates first.
        for route in sorted(self.routes, key=lambda r: r.path.count("{")):
            params = route.matches(method, path)
            if params is not None:
                return route, params
        return None

    def handle(
        self, method: str, raw_target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> GatewayAnswer:
        request_id = str(uuid.uuid4())
        target = urlsplit(raw_target)
        prefix = f"/{self.stage}"
        if target.path != prefix and not target.path.startswith(prefix + "/"):
            return self.gateway_error("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token", request_id)
        raw_path = target.path[len(prefix) :] or "/"
        found = self.find_route(method, raw_path)
        if found is None:
            return self.gateway_error("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token", request_id)
        route, raw_params = found
        sent_key = next((v for k, v in headers if k.lower() == "x-api-key"), None)
        if route.api_key_required and (sent_key is None or not secrets.compare_digest(sent_key, self.api_key)):
            return self.gateway_error("INVALID_API_KEY", 403, "Forbidden", request_id)
        if len(body) > MAX_BODY_BYTES:
            return self.gateway_error("REQUEST_TOO_LARGE", 413, "Request Too Long", request_id)
        if not self.ready.wait(timeout=30):
            return self.gateway_error("DEFAULT_5XX", 503, "Service Unavailable", request_id)
        function = self.functions[route.function_id]
        event = self.proxy_event(
            route, method, raw_path, target.query, raw_params, headers, body, source_ip, sent_key, request_id
        )
        try:
            result, _ = function.invoke(event)
        except Exception:  # the function failed: API Gateway answers 502, the error is the function's log
            return self.gateway_error("DEFAULT_5XX", 502, "Internal server error", request_id)
        return self.proxy_answer(result, request_id)

    def proxy_event(
        self,
        route: ApiRoute,
        method: str,
        raw_path: str,
        query: str,
        raw_params: dict[str, str],
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        api_key: str | None,
        request_id: str,
    ) -> dict[str, Any]:
        """The REST API Lambda proxy event (payload format 1.0)."""
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in [*headers, ("X-Forwarded-For", source_ip), ("X-Forwarded-Proto", "http")]:
            single[name] = value
            multi.setdefault(name, []).append(value)
        query_single: dict[str, str] = {}
        query_multi: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            query_single[name] = value
            query_multi.setdefault(name, []).append(value)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        body_field, binary = proxy_body(body, content_type)
        now = time.time()
        user_agent = next((v for k, v in headers if k.lower() == "user-agent"), None)
        # REST API Gateway passes the path as sent (percent-encoded) and decodes the path parameters.
        path = raw_path
        host = next((v for k, v in headers if k.lower() == "host"), "127.0.0.1")
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method.upper(),
            "headers": single,
            "multiValueHeaders": multi,
            "queryStringParameters": query_single or None,
            "multiValueQueryStringParameters": query_multi or None,
            "pathParameters": {k: unquote(v, errors="replace") for k, v in raw_params.items()} or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": route.event_id,
                "resourcePath": route.path,
                "httpMethod": method.upper(),
                "extendedRequestId": request_id,
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "path": f"/{self.stage}{path}",
                "accountId": self.template.account_id,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": host.split(".", 1)[0],
                "requestTimeEpoch": int(now * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "apiKey": api_key if route.api_key_required else None,
                    "apiKeyId": self.api_key_id if route.api_key_required else None,
                    "sourceIp": source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": user_agent,
                    "user": None,
                },
                "domainName": host,
                "apiId": self.rest_api_id,
            },
            "body": body_field,
            "isBase64Encoded": binary,
        }

    def proxy_answer(self, result: Any, request_id: str) -> GatewayAnswer:
        """The function's proxy result as HTTP; a malformed result is a 502, as in API Gateway."""
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            return self.gateway_error("DEFAULT_5XX", 502, "Internal server error", request_id)
        headers: dict[str, list[str]] = {}
        for name, value in (result.get("headers") or {}).items():
            headers[name] = [str(value)]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = [str(v) for v in values]
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = ["application/json"]
        headers["x-amzn-RequestId"] = [request_id]
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        return GatewayAnswer(int(result["statusCode"]), headers, body)

    def gateway_error(self, response_type: str, status: int, message: str, request_id: str) -> GatewayAnswer:
        """An answer API Gateway makes itself, shaped by the template's GatewayResponses when it has one."""
        default = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        spec = self.gateway_responses.get(response_type) or self.gateway_responses.get(default) or {}
        templates = spec.get("ResponseTemplates") or {}
        mapping = templates.get("application/json")
        if mapping is None:
            body = json.dumps({"message": message}).encode()
        else:
            body = render_error_template(str(mapping), response_type, message, request_id).encode()
        status = int(spec.get("StatusCode", status))
        headers = {"Content-Type": ["application/json"], "x-amzn-RequestId": [request_id]}
        if response_type in ("MISSING_AUTHENTICATION_TOKEN", "INVALID_API_KEY"):
            headers["x-amzn-ErrorType"] = [
                "MissingAuthenticationTokenException" if "Token" in message else "ForbiddenException"
            ]
        return GatewayAnswer(status, headers, body)


def proxy_body(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """The proxy event's (body, isBase64Encoded). Text that is not UTF-8 goes as bytes too (module docstring)."""
    if not body:
        return None, False
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def render_error_template(mapping: str, response_type: str, message: str, request_id: str) -> str:
    """The $context variables of a gateway response template. $context.error.messageString is the message
    already quoted as a JSON string (API Gateway's definition), $context.error.message the bare text."""
    values = {
        "$context.error.messageString": json.dumps(message),
        "$context.error.message": message,
        "$context.error.responseType": response_type,
        "$context.requestId": request_id,
    }
    pattern = re.compile("|".join(re.escape(k) for k in sorted(values, key=len, reverse=True)))
    return pattern.sub(lambda m: values[m.group(0)], mapping)
