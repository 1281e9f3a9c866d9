"""Helpers for the unit tests: the events/ samples, loading and invoking the handlers, a fake 8x8 client."""

from __future__ import annotations

import base64
import copy
import functools
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from casebridge.errors import SigningKeyUnavailable

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
CONVERSATION_ID = "8f1c9a52-6c1e-4be8-9d27-0c5c1f9e1a01"  # the conversation of the webhook samples
SIGNATURE_HEADERS = (
    "x-8x8-signature",
    "x-8x8-event-id",
    "x-8x8-retry",
    "x-8x8-transmission-time",
    "x-8x8-tenant-id",
    "x-8x8-customer-id",
)


# ---- events ---------------------------------------------------------------------------------------
_EVENT_CACHE: dict[str, dict[str, Any]] = {}


def load_event(name: str) -> dict[str, Any]:
    if name not in _EVENT_CACHE:
        _EVENT_CACHE[name] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return copy.deepcopy(_EVENT_CACHE[name])


def _set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for key in [k for k in event["headers"] if k.lower() == name.lower()]:
        del event["headers"][key]
        event["multiValueHeaders"].pop(key, None)
    if value is not None:
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]


def api_event(
    name: str,
    *,
    case_id: str | None = None,
    body: Any = ...,
    query: dict[str, str] | Any | None = ...,
    headers: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """A sample API event, with its case id, body (dict → JSON, str/bytes as is), query and headers replaced."""
    event = load_event(name)
    if case_id is not None:
        old = event["pathParameters"]["caseId"]
        event["pathParameters"]["caseId"] = case_id
        event["path"] = event["path"].replace(old, case_id, 1)
        event["requestContext"]["path"] = event["requestContext"]["path"].replace(old, case_id, 1)
    if body is not ...:
        if isinstance(body, dict | list):
            body = json.dumps(body)
        if isinstance(body, bytes):
            body = body.decode()
        event["body"] = body
    if query is not ...:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    for header, value in (headers or {}).items():
        _set_header(event, header, value)
    return event


def webhook_event(
    name: str,
    signer: Any,
    *,
    body: bytes | None = None,
    header_case: Callable[[str], str] = str.lower,
    base64_encoded: bool = False,
    **sign: Any,
) -> dict[str, Any]:
    """A webhook sample re-signed now with the test's key; `body` replaces the sample's raw body."""
    event = load_event(name)
    raw = event["body"].encode() if body is None else body
    for header in SIGNATURE_HEADERS:
        _set_header(event, header, None)
    for header, value in signer.headers(raw, **sign).items():
        _set_header(event, header_case(header), value)
    if base64_encoded:
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = raw.decode()
    return event


def sample_body(name: str) -> bytes:
    return load_event(name)["body"].encode()


# ---- handlers -------------------------------------------------------------------------------------
@dataclass
class LambdaContext:
    function_name: str = "casebridge-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:casebridge-test"
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"
    log_group_name: str = "/aws/lambda/casebridge-test"
    log_stream_name: str = "2025/03/10/[$LATEST]abc"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 20_000


def load_function(directory: str) -> ModuleType:
    name = f"casebridge_fn_{directory}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / directory / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, Any]
    raw: str


def invoke(module: ModuleType, event: dict[str, Any]) -> Answer:
    result = module.lambda_handler(event, LambdaContext())
    raw = result.get("body") or ""
    body = json.loads(raw) if raw else None
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for k, v in (result.get("multiValueHeaders") or {}).items():
        headers.setdefault(k.lower(), v[0] if isinstance(v, list) and v else v)
    return Answer(result["statusCode"], body, headers, raw)


# ---- a fake 8x8 (for tests whose subject is not the HTTP edge) ------------------------------------
@dataclass
class FakeContactCenter:
    conversation_ids: list[str] = field(default_factory=lambda: [CONVERSATION_ID])
    errors: dict[str, list[BaseException]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def _maybe_fail(self, operation: str) -> None:
        queued = self.errors.get(operation)
        if queued:
            raise queued.pop(0)

    def create_conversation(self, channel_id: str, customer: dict[str, str], history: Any) -> str:
        self._maybe_fail("create")
        self.created.append({"channelId": channel_id, "customer": customer, "history": list(history)})
        return self.conversation_ids.pop(0) if len(self.conversation_ids) > 1 else self.conversation_ids[0]

    def send_message(self, conversation_id: str, text: str, author_type: str) -> None:
        self._maybe_fail("send")
        self.sent.append((conversation_id, text, author_type))

    def customer_leaves(self, conversation_id: str) -> None:
        self._maybe_fail("leave")
        self.left.append(conversation_id)


@dataclass
class StubJwkFetcher:
    """Serves the test's public keys by kid; counts calls; can be switched off (endpoint down)."""

    keys: dict[str, dict[str, str]]
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def __call__(self, kid: str) -> dict[str, str] | None:
        self.calls.append(kid)
        if self.down:
            raise SigningKeyUnavailable("key endpoint down (test)")
        return self.keys.get(kid)


@functools.cache
def client(service: str) -> Any:
    """A boto3 client for the tests' own AWS calls, made once (moto intercepts it while a mock is active)."""
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
