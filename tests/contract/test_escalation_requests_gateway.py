"""The escalation's Chat Gateway calls (ESCALATION.md §4, §7) match 8x8's published contract: post-agent
assignment, read receipt and thinking, checked like every other call of the client."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client
from tests.contract.test_connector_requests_gateway import BASE, GW, check_call
from tests.support.openapi import load_spec

# X-8x8-Tenant on every call (T25), where the OAS forgets it.
TOLERATED_HEADER = "header X-8x8-Tenant is not declared"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec("chat-gateway-v1.openapi.yml", "Chat Gateway v1")


@responses.activate
def test_the_escalation_calls_are_in_the_contract(spec: dict[str, Any]) -> None:
    responses.post(f"{GW}/conversations/c-1/post-agent-assignment", status=201)
    responses.post(f"{GW}/conversations/c-1/read-receipt", status=204)
    responses.post(f"{GW}/conversations/c-1/thinking", status=204)
    client = ChatGatewayV1Client(BASE, "acme", lambda: "key-1", session=requests.Session())

    client.assign_post_agent("c-1", "hook-1", max_total_minutes=5, user_timeout_minutes=1000)
    client.send_read_receipt("c-1", "user", 1_764_928_800_000)
    client.send_thinking("c-1", max_seconds=5000)

    operations, findings = [], set()
    for call in responses.calls:
        operation_id, found = check_call(spec, call)
        operations.append(operation_id)
        findings |= {f for f in found if f != TOLERATED_HEADER}
    assert operations == ["createpostagentassignment", "sendreadreceipt", "sendthinkingindicator"], operations
    assert findings == set()
    # 8x8's ranges: maxTotalMinutes 20-600, userTimeoutInMinutes 10-300, maxThinkingTimeSeconds 1-600.
    assignment = json.loads(responses.calls[0].request.body or b"{}")
    assert assignment["configuration"] == {
        "notifyChannelWebhookIfExists": "false",
        "maxTotalMinutes": 20,
        "userTimeoutInMinutes": 300,
    }
    assert json.loads(responses.calls[2].request.body or b"{}")["maxThinkingTimeSeconds"] == 600


@responses.activate
def test_post_agent_numbers_go_again_as_strings_when_8x8_refuses_ints(spec: dict[str, Any]) -> None:
    """ESCALATION.md §10.6: 8x8's own client sends the numbers as strings; ints first, strings on a 400."""
    refusal = {"message": "bad", "errors": [{"code": "invalid_parameter", "message": "maxTotalMinutes"}]}
    responses.post(f"{GW}/conversations/c-1/post-agent-assignment", status=400, json=refusal)
    responses.post(f"{GW}/conversations/c-1/post-agent-assignment", status=201)
    client = ChatGatewayV1Client(BASE, "acme", lambda: "key-1", session=requests.Session())
    client.assign_post_agent("c-1", "hook-1", max_total_minutes=60, user_timeout_minutes=10)
    sent = [json.loads(c.request.body or b"{}")["configuration"] for c in responses.calls]
    assert [c["maxTotalMinutes"] for c in sent] == [60, "60"]
    assert [c["userTimeoutInMinutes"] for c in sent] == [10, "10"]
