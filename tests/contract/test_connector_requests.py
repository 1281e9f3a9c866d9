"""The connector's own calls to 8x8 match 8x8's published Chat API v2 contract (paths, methods, bodies)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses
from openapi_schema_validator import OAS30Validator

from casebridge.business_api.models import Customer, HistoryMessage
from casebridge.contact_center.base import NewConversation
from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher
from casebridge.contact_center.tokens import TokenProvider
from tests.support.openapi import find_operation, load_spec

BASE = "https://api.8x8.test"
# CONTRACT.md: the v2 file marks `user` required but production clients send `customer`.
EXPECTED_FINDINGS = {("createcctransaction", "'user' is a required property")}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec("chat-api-v2.openapi.json", "Chat API v2")


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
        name="Ann",
        email="ann@example.com",
        customer_id="42",
        company="Acme",
        language="en",
        properties={"plan": "gold"},
    )
    history = [
        HistoryMessage(author_type="bot", text="Hi!"),
        HistoryMessage(author_type="user", text="A person please"),
    ]

    assert client.create_conversation(NewConversation("ch-1", "case-7", customer, history)) == "c-1"
    client.send_message("c-1", "hello", "user")
    client.customer_leaves("c-1")

    findings: set[tuple[str, str]] = set()
    operations = []
    for call in responses.calls:
        _, operation = find_operation(spec, call.request.method or "", call.request.url or "")
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
