"""Typing both ways: POST /cases/{caseId}/typing to 8x8 (fire and forget), and agent typing as AgentTyping on
the bus only."""
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.connector import map_case
from tests.support.events import api_gateway_event
from tests.support.samples import Answer, invoke
from tests.support.signing import WebhookSigner


def typing(functions: Any, case_id: str, body: Any = None) -> Answer:
    event = api_gateway_event(
        "POST",
        "/cases/{caseId}/typing",
        path_parameters={"caseId": case_id},
        body=None if body is None else json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    return invoke(functions.outbound, event)


def test_typing_reaches_8x8_and_answers_204(gateway_services: Any, functions: Any, fake_8x8: Any) -> None:
    map_case("c-typing", "conv-typing")
    answer = typing(functions, "c-typing", {"authorType": "bot"})
    assert answer.status == 204 and answer.raw == ""
    assert typing(functions, "c-typing").status == 204  # no body: the customer types
    assert fake_8x8.typing == [("conv-typing", "bot"), ("conv-typing", "user")]


def test_a_typing_failure_is_202_with_a_warning_and_never_queued(
    gateway_services: Any, functions: Any, fake_8x8: Any, fifo_queues: Any
) -> None:
    from casebridge.errors import ContactCenterUnavailable
    from tests.support.aws import aws_client

    map_case("c-typing", "conv-typing")
    fake_8x8.errors["typing"] = [ContactCenterUnavailable("8x8 is unavailable (503)", upstream_status=503)]
    answer = typing(functions, "c-typing", {"authorType": "user"})
    assert answer.status == 202
    assert answer.body == {
        "caseId": "c-typing",
        "status": "not_delivered",
        "warning": {"code": "ContactCenterUnavailable", "message": "8x8 is unavailable (503)"},
    }
    attributes = aws_client("sqs").get_queue_attributes(QueueUrl=fifo_queues.outbound_url, AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


@pytest.mark.parametrize(
    ("case_id", "body", "status", "code"),
    [
        ("c-unknown", {"authorType": "user"}, 404, "CaseNotFound"),
        ("c-typing", {"authorType": "agent"}, 400, "InvalidRequest"),
        ("c-typing", {"authorType": "user", "extra": 1}, 400, "InvalidRequest"),
    ],
)
def test_typing_refusals(
    gateway_services: Any, functions: Any, case_id: str, body: dict[str, Any], status: int, code: str
) -> None:
    map_case("c-typing", "conv-typing")
    answer = typing(functions, case_id, body)
    assert (answer.status, answer.body["error"]["code"]) == (status, code)


def test_typing_before_the_conversation_exists_is_409(gateway_services: Any, functions: Any) -> None:
    assert gateway_services.store.claim_opening("c-opening", 30_000)
    answer = typing(functions, "c-opening", {"authorType": "user"})
    assert (answer.status, answer.body["error"]["code"]) == (409, "Conflict")


def test_agent_typing_is_on_the_bus_and_not_on_the_timeline(
    gateway_services: Any, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    from casebridge import webhooks

    map_case("c-typing", "conv-typing")
    joined = json.dumps(
        {
            "eventType": "MEMBERS_CHANGED",
            "conversationId": "conv-typing",
            "timestamp": 4,
            "data": {"memberType": "agent", "change": "joined", "id": "agent-4"},
        }
    ).encode()
    webhooks.handle_webhook(gateway_services, webhook_signer.headers(joined), joined)
    # "Stopped typing" names nobody (users: []): the case's agent is filled in.
    for users, event_id in (([{"type": "agent", "id": "agent-4"}], "act-1"), ([], "act-2")):
        body = json.dumps(
            {
                "eventType": "ACTIVITY",
                "conversationId": "conv-typing",
                "timestamp": 5,
                "data": {"name": "typing", "value": {"users": users}},
            }
        ).encode()
        assert (
            webhooks.handle_webhook(gateway_services, webhook_signer.headers(body, event_id=event_id), body)["status"]
            == "published"
        )
    typing_events = [e["detail"] for e in event_bus.published() if e["detail-type"] == "AgentTyping"]
    assert [(e["agentId"], e["typing"]) for e in typing_events] == [("agent-4", True), ("agent-4", False)]
    entries, _ = gateway_services.store.list_timeline("c-typing", None, 50)
    assert [e.type for e in entries if e.type == "AgentTyping"] == []
