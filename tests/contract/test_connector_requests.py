"""The connector's own calls to 8x8 match 8x8's published Chat API v2 contract (paths, methods, bodies)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import responses
from openapi_schema_validator import OAS30Validator

from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher
from casebridge.contact_center.tokens import TokenProvider
from casebridge.models import Customer, HistoryMessage

BASE = "https://api.8x8.test"
REPO_ROOT = Path(__file__).resolve().parents[2]
# CONTRACT.md: the v2 file marks `user` required but production clients send `customer`.
EXPECTED_FINDINGS = {("createcctransaction", "'user' is a required property")}


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(target, root)
        return {k: _resolve(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    directory = Path(os.environ.get("EIGHTXEIGHT_CONTRACT_DIR") or REPO_ROOT.parent / "shared" / "8x8")
    path = directory / "chat-api-v2.openapi.json"
    if not path.is_file():
        pytest.skip(f"8x8's Chat API v2 contract is not at {path}; set EIGHTXEIGHT_CONTRACT_DIR to check against it")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return dict(_resolve(raw, raw))


def _operation(spec: dict[str, Any], method: str, url: str) -> tuple[str, dict[str, Any]]:
    path = urlsplit(url).path
    for template in sorted(spec["paths"], key=lambda p: p.count("{")):
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in spec["paths"][template]:
            return template, spec["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of Chat API v2")


@responses.activate
def test_every_call_the_connector_makes_is_in_the_contract(spec: dict[str, Any]) -> None:
    tenant = f"{BASE}/vcc/eu/chat/v2/tenant/acme"
    responses.post(f"{BASE}/oauth/v2/token", json={"access_token": "tok", "expires_in": "3600"})
    responses.post(f"{tenant}/conversations", status=202, json={"conversationId": "c-1"})
    responses.post(f"{tenant}/conversations/c-1/messages", status=202)
    responses.delete(f"{tenant}/conversations/c-1/participants/customer", status=204)
    session = requests.Session()
    tokens = TokenProvider("acme", token_fetcher(BASE, lambda: ("key", "secret"), session=session))
    client = ChatApiV2Client(BASE, "eu", "acme", tokens, session=session)
    customer = Customer(
        name="Ann", email="ann@example.com", customerId="42", company="Acme", language="en", properties={"plan": "gold"}
    )
    history = [HistoryMessage(authorType="bot", text="Hi!"), HistoryMessage(authorType="user", text="A person please")]

    assert client.create_conversation("ch-1", "case-7", customer, history) == "c-1"
    client.send_message("c-1", "hello", "user")
    client.customer_leaves("c-1")

    findings: set[tuple[str, str]] = set()
    operations = []
    for call in responses.calls:
        _, operation = _operation(spec, call.request.method or "", call.request.url or "")
        operations.append(operation["operationId"])
        content = (operation.get("requestBody") or {}).get("content", {})
        if "application/json" in content and call.request.body:
            body = json.loads(call.request.body)
            for error in OAS30Validator(content["application/json"]["schema"]).iter_errors(body):
                findings.add((operation["operationId"], error.message))
    assert operations == [
        "createaccesstoken",
        "createcctransaction",
        "sendmessagetocctransaction",
        "customerparticipantleavecctransaction",
    ]
    assert findings == EXPECTED_FINDINGS
    sent = json.loads(responses.calls[1].request.body or b"{}")
    assert sent["customer"]["caseId"] == "case-7" and sent["customer"]["plan"] == "gold"
    assert sent["history"]["messages"][0] == {"text": "Hi!", "type": "bot"}
