"""The business API's plumbing, shared by the handlers: a resolver whose errors are always JSON
`{"error": {"code", "message"}}`, and the helpers that read path, query and body."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from casebridge.errors import CasebridgeError, InvalidRequest, PayloadTooLarge
from casebridge.identifiers import CASE_ID_RE
from casebridge.observability import logger

if TYPE_CHECKING:
    from casebridge.business_api.models import _Strict

MAX_BODY_BYTES = 256 * 1024
Model = TypeVar("Model", bound="_Strict")
# ASCII digits only, and few of them: str.isdigit() also accepts "²" or "٣" (int() then fails or reads them),
# and int() refuses strings of more than 4300 digits; both ended as a 500.
_ASCII_INT = re.compile(r"[0-9]{1,9}")
# application/json and the structured-syntax suffix types (application/problem+json...), parameters ignored.
_JSON_MEDIA_TYPE = re.compile(r"application/(?:[\w.-]+\+)?json", re.IGNORECASE)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class UnsupportedMediaType(CasebridgeError):
    """A body the business API cannot read: it only takes JSON."""

    status_code = 415
    code = "UnsupportedMediaType"


def _json_default(value: Any) -> Any:
    """DynamoDB hands numbers back as Decimal (e.g. a timeline entry's detail): write them as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":"), default=_json_default),
        headers=headers,
    )


def error_response(error: CasebridgeError) -> Response[str]:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return json_response(error.status_code, error.body(), headers)


def is_json_media_type(content_type: str | None) -> bool:
    """True for application/json and application/*+json, and for no Content-Type at all: a client that sends
    none has not said its body is anything else, and the body must still parse as JSON."""
    if content_type is None or not content_type.strip():
        return True
    return bool(_JSON_MEDIA_TYPE.fullmatch(content_type.split(";", 1)[0].strip()))


def _require_json_body(app: APIGatewayRestResolver, next_middleware: Callable[..., Response[Any]]) -> Response[Any]:
    """415 for a request that has a body in a type other than JSON, before the route reads it."""
    event = app.current_event
    if event.body and not is_json_media_type(event.headers.get("content-type")):
        logger.warning("request refused", extra={"errorCode": UnsupportedMediaType.code, "status": 415})
        return error_response(UnsupportedMediaType("request body must be JSON (Content-Type: application/json)"))
    return next_middleware(app)


def build_resolver(*, json_bodies_only: bool = True) -> APIGatewayRestResolver:
    """The resolver every function uses. `json_bodies_only` answers 415 to a body of another Content-Type
    (the business routes); the webhook route turns it off (see functions/webhook_intake/app.py)."""
    app = APIGatewayRestResolver()
    if json_bodies_only:
        app.use(middlewares=[_require_json_body])

    @app.exception_handler(CasebridgeError)  # type: ignore[untyped-decorator]
    def _domain_error(error: CasebridgeError) -> Response[str]:
        log = logger.warning if error.status_code < 500 else logger.error
        log("request failed", extra={"errorCode": error.code, "status": error.status_code})
        return error_response(error)

    @app.not_found
    def _no_route(_: Exception) -> Response[str]:
        event = app.current_event
        return json_response(
            404, {"error": {"code": "RouteNotFound", "message": f"no route {event.http_method} {event.path}"}}
        )

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(error: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return json_response(500, {"error": {"code": "InternalError", "message": "internal error; it was logged"}})

    return app


def case_id_from_path(value: str) -> str:
    """The caseId path parameter. The resolver reads it from the event's path, which REST API Gateway passes
    percent-encoded: decode it once, as API Gateway does for pathParameters ("a%3Ab" is the case "a:b"; "a%2Fb"
    is "a/b", one segment, refused below)."""
    try:
        decoded = unquote(value, errors="strict")
    except UnicodeDecodeError:
        decoded = ""  # percent-encoded bytes that are not UTF-8: not a caseId either
    # fullmatch: the pattern's "$" would also accept a trailing newline ("%0A").
    if not CASE_ID_RE.fullmatch(decoded):
        raise InvalidRequest("caseId must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return decoded


def raw_body(app: APIGatewayRestResolver, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body's bytes exactly as sent (API Gateway base64-encodes binary media types), at most `limit`."""
    event = app.current_event
    body = event.body or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.is_base64_encoded else body.encode()
    except (binascii.Error, ValueError):
        raise InvalidRequest("request body is not valid base64") from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    return raw


def lone_surrogate_at(data: Any) -> str | None:
    """The dotted path of the first string (value or key) holding a lone surrogate: JSON lets "\\ud800" stand
    alone, but it is no character and cannot be encoded as UTF-8 (hashing, DynamoDB, 8x8 would all fail later).
    Iterative: the body may be as deep as the parser allowed."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path or "body"
        elif isinstance(value, dict):
            for key, item in reversed(list(value.items())):
                inner = f"{path}.{key}" if path else str(key)
                if _SURROGATE.search(key):
                    return path or "body"
                stack.append((inner, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in reversed(list(enumerate(value))))
    return None


def parse_body(app: APIGatewayRestResolver, model: type[Model], *, optional: bool = False) -> Model:
    raw = raw_body(app)
    if not raw.strip():
        if optional:
            return model()
        raise InvalidRequest("request body is required (JSON)")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("request body is not valid JSON") from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply to be a request") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    return validate_body(model, data)


def validate_body(model: type[Model], data: dict[str, Any]) -> Model:
    """A parsed JSON object as the request model, or the 400 naming the field (the REST routes and the channel
    WebSocket's actions alike)."""
    surrogate_at = lone_surrogate_at(data)
    if surrogate_at is not None:
        details = [{"field": surrogate_at, "message": "holds a lone surrogate escape (\\ud800-\\udfff), not Unicode"}]
        raise InvalidRequest("request body is not valid", details=details)
    # The request models load here, with the first body to validate: the webhook intake never pays for them.
    from casebridge.business_api.models import RequestInvalid, validate  # noqa: PLC0415

    try:
        return validate(model, data)
    except RequestInvalid as error:
        details = [{"field": error.field, "message": error.message}]
        raise InvalidRequest(error.summary, details=details) from None


def case_and_body(
    app: APIGatewayRestResolver, case_id_param: str, model: type[Model], *, optional: bool = False
) -> tuple[str, Model]:
    """A case route's caseId (put on every log line from here on) and its validated JSON body."""
    case_id = case_id_from_path(case_id_param)
    logger.append_keys(caseId=case_id)
    return case_id, parse_body(app, model, optional=optional)


def int_query(app: APIGatewayRestResolver, name: str, default: int, low: int, high: int) -> int:
    value = app.current_event.get_query_string_value(name)
    if value is None:
        return default
    if not _ASCII_INT.fullmatch(value) or not low <= int(value) <= high:
        raise InvalidRequest(f"'{name}' must be an integer from {low} to {high}")
    return int(value)
