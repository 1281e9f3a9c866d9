"""The sample events of events/ (what `sam local invoke` uses), edited per test, and invoking a handler with one."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import requests

from casebridge.business_api.models import Customer
from tests.support.lambdas import LambdaContext
from tests.support.paths import EVENTS_DIR
from tests.support.signing import SIGNATURE_HEADERS, WebhookSigner

CONVERSATION_ID = "8f1c9a52-6c1e-4be8-9d27-0c5c1f9e1a01"  # the conversation of the webhook samples
CASE_ID = "case-1001"  # the case of the API samples

_EVENT_CACHE: dict[str, dict[str, Any]] = {}


def load_event(name: str) -> dict[str, Any]:
    if name not in _EVENT_CACHE:
        _EVENT_CACHE[name] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return copy.deepcopy(_EVENT_CACHE[name])


def sample_body(name: str) -> bytes:
    return str(load_event(name)["body"]).encode()


def _set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for key in [k for k in event["headers"] if k.lower() == name.lower()]:
        del event["headers"][key]
        event["multiValueHeaders"].pop(key, None)
    if value is not None:
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]


def sample_api_event(
    name: str,
    *,
    case_id: str | None = None,
    body: Any = ...,
    query: Any = ...,
    headers: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """A sample API event, with its case id, body (dict → JSON, str/bytes as is), query (a dict or None) and
    headers (None removes one) replaced."""
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


def sample_webhook_event(
    name: str,
    signer: WebhookSigner,
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


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, Any]
    raw: str


def invoke(module: ModuleType, event: dict[str, Any]) -> Answer:
    """Call a handler as Lambda does; the answer with its JSON body parsed and header names lower-cased."""
    result = module.lambda_handler(event, LambdaContext())
    raw = result.get("body") or ""
    body = json.loads(raw) if raw else None
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for k, v in (result.get("multiValueHeaders") or {}).items():
        headers.setdefault(k.lower(), v[0] if isinstance(v, list) and v else v)
    return Answer(result["statusCode"], body, headers, raw)


def post_message(outbound: ModuleType, **adapt: Any) -> Answer:
    """POST /cases/{caseId}/messages to the outbound function: the sample, adapted as `sample_api_event` does."""
    return invoke(outbound, sample_api_event("post_message.json", **adapt))


def accept_messages(outbound: ModuleType, *texts: str, case_id: str = CASE_ID) -> list[str]:
    """Post each text on the case; every one must be accepted (202). Their message ids, in order."""
    ids = []
    for text in texts:
        answer = post_message(outbound, case_id=case_id, body={"text": text})
        assert answer.status == 202, answer.raw
        ids.append(answer.body["messageId"])
    return ids


def crm_customer() -> Customer:
    """A customer with every standard field and two custom properties."""
    return Customer(
        name="Ann",
        email="ann@example.com",
        phone="+44 20 7946 0000",
        customer_id="crm-42",
        company="Acme",
        language="de",
        properties={"plan": "gold", "tier": "2"},
    )


# What the HTTP transport raises when no answer comes (failure, ambiguous), by test id: ambiguous where 8x8 may
# already have acted on the request (it was sent, the answer was lost).
NETWORK_FAILURES: dict[str, tuple[Exception, bool]] = {
    "read-timeout": (requests.ReadTimeout("slow"), True),
    "connect-timeout": (requests.ConnectTimeout("no route"), False),
    "connection-refused": (requests.ConnectionError("NewConnectionError: [Errno 111] Connection refused"), False),
    "dropped-mid-answer": (
        requests.ConnectionError("Connection aborted.', RemoteDisconnected('Remote end closed connection')"),
        True,
    ),
}


class TimeoutRecorder(requests.Session):
    """A session that records the timeout of each request and answers none (a connect timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[Any] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.timeouts.append(kwargs.get("timeout"))
        raise requests.ConnectTimeout("recorded")
