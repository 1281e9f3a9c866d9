"""Hand-back, 8x8's idle, read receipts both ways, thinking, post-agent assignment and delivery status, through
the real intake and handlers, on both 8x8 APIs where they apply."""
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.errors import ContactCenterUnavailable
from tests.support.aws import aws_client
from tests.support.connector import map_case
from tests.support.events import api_gateway_event
from tests.support.fakes import FakeContactCenter
from tests.support.lambdas import LambdaContext
from tests.support.samples import Answer, invoke, sample_api_event
from tests.support.signing import WebhookSigner


def gateway_event(signer: WebhookSigner, services: Any, event_id: str, event_type: str, at: int, **data: Any) -> Any:
    from casebridge import webhooks

    body = json.dumps({"eventType": event_type, "conversationId": "conv-1", "timestamp": at, "data": data}).encode()
    return webhooks.handle_webhook(services, signer.headers(body, event_id=event_id), body)


def v2_event(signer: WebhookSigner, services: Any, event_id: str, event_type: str, at: int, **fields: Any) -> Any:
    from casebridge import webhooks

    payload = {"eventType": event_type, "conversationId": "conv-1", "timestamp": at, **fields}
    body = json.dumps(payload).encode()
    return webhooks.handle_webhook(services, signer.headers(body, event_id=event_id), body)


def timeline(services: Any, case_id: str = "case-1") -> list[Any]:
    entries: list[Any] = services.store.list_timeline(case_id, None, 100)[0]
    return entries


def of_type(entries: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e.detail for e in entries if e.type == kind]


# ---- hand-back --------------------------------------------------------------------------------------------------
def test_gateway_agent_ends_hands_back_once_with_the_wrap_up_code(
    gateway_services: Any, webhook_signer: WebhookSigner, event_bus: Any
) -> None:
    map_case("case-1", "conv-1")
    gateway_event(webhook_signer, gateway_services, "e1", "QUEUED", 1, queueId="q1", queueName="Support")
    gateway_event(
        webhook_signer, gateway_services, "e2", "MEMBERS_CHANGED", 2, memberType="agent", change="joined", id="a1"
    )
    left = {"memberType": "agent", "change": "left", "id": "a1", "wrapUpCode": "Resolved"}
    gateway_event(webhook_signer, gateway_services, "e3", "MEMBERS_CHANGED", 3, **left)
    gateway_event(webhook_signer, gateway_services, "e3", "MEMBERS_CHANGED", 3, **left)  # 8x8's retry: a duplicate
    assert of_type(timeline(gateway_services), "HandedBack") == [{"reason": "agent-ended", "wrapUpCode": "Resolved"}]
    on_bus = [e["detail"] for e in event_bus.published() if e["detail-type"] == "HandedBack"]
    assert [(e["reason"], e["wrapUpCode"]) for e in on_bus] == [("agent-ended", "Resolved")]
    assert gateway_services.store.get_case("case-1").live.state.value == "agent_left"  # a new message reopens it


def test_a_transfer_is_not_a_hand_back(gateway_services: Any, webhook_signer: WebhookSigner) -> None:
    map_case("case-1", "conv-1")
    gateway_event(webhook_signer, gateway_services, "e1", "QUEUED", 1, queueId="q1")
    gateway_event(
        webhook_signer, gateway_services, "e2", "MEMBERS_CHANGED", 2, memberType="agent", change="joined", id="a1"
    )
    gateway_event(webhook_signer, gateway_services, "e3", "TRANSFER", 3)
    gateway_event(
        webhook_signer, gateway_services, "e4", "MEMBERS_CHANGED", 4, memberType="agent", change="left", id="a1"
    )
    assert of_type(timeline(gateway_services), "HandedBack") == []


def test_v2_agent_left_hands_back_with_the_event_alone(services: Any, webhook_signer: WebhookSigner) -> None:
    map_case("case-1", "conv-1")
    v2_event(webhook_signer, services, "e1", "QUEUED", 1, queueId="q1", queueName="Support")
    v2_event(webhook_signer, services, "e2", "AGENT_JOINED", 2, agentId="a1", agentName="Alice")
    v2_event(webhook_signer, services, "e3", "AGENT_LEFT", 3, agentId="a1", agentName="Alice")
    assert of_type(timeline(services), "HandedBack") == [{"reason": "agent-ended"}]


def test_8x8_idle_with_an_agent_is_a_customer_idle_signal(gateway_services: Any, webhook_signer: WebhookSigner) -> None:
    map_case("case-1", "conv-1")
    gateway_event(webhook_signer, gateway_services, "e1", "QUEUED", 1, queueId="q1")
    gateway_event(
        webhook_signer, gateway_services, "e2", "MEMBERS_CHANGED", 2, memberType="agent", change="joined", id="a1"
    )
    gateway_event(webhook_signer, gateway_services, "e3", "CONVERSATION_UPDATE", 3, state="IDLE")
    assert of_type(timeline(gateway_services), "CustomerIdle") == [{"source": "8x8"}]


def test_8x8_read_receipts_become_message_read(gateway_services: Any, webhook_signer: WebhookSigner) -> None:
    map_case("case-1", "conv-1")
    documented = [{"timestamp": 5, "users": [{"id": "agent-abc-123", "type": "agent"}]}, {"timestamp": 8, "users": []}]
    gateway_event(webhook_signer, gateway_services, "e1", "ACTIVITY", 9, name="read-receipts", value=documented)
    gateway_event(webhook_signer, gateway_services, "e2", "ACTIVITY", 10, name="read-receipts", value={"readAt": 7})
    gateway_event(webhook_signer, gateway_services, "e3", "ACTIVITY", 11, name="read-receipts", value="odd")
    assert of_type(timeline(gateway_services), "MessageRead") == [
        {"readAt": 8, "agentId": "agent-abc-123"},  # GATEWAY.md's shape: up to the latest, by the agent named
        {"readAt": 7},
        {"readAt": 11},  # an unreadable value: up to the event's time, never refused
    ]


# ---- post-agent assignment at open ------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"])
def test_post_agent_assignment_is_registered_at_open_on_the_gateway_only(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, api: str
) -> None:
    fake_8x8.api = api
    services.settings = replace(services.settings, post_agent_webhook_id="hook-1")
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json"))
    assert answer.status == 201, answer.raw
    expected = [(answer.body["conversationId"], "hook-1")] if api == "chat-gateway-v1" else []
    assert fake_8x8.post_agent == expected


def test_a_failed_post_agent_assignment_never_fails_the_open(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    fake_8x8.api = "chat-gateway-v1"
    fake_8x8.errors["post_agent"] = [ContactCenterUnavailable("8x8 down", upstream_status=503)]
    services.settings = replace(services.settings, post_agent_webhook_id="hook-1")
    assert invoke(functions.lifecycle, sample_api_event("open_conversation.json")).status == 201


# ---- the channel's read receipts and thinking -------------------------------------------------------------------
def post(functions: SimpleNamespace, route: str, body: Any) -> Answer:
    event = api_gateway_event(
        "POST",
        f"/cases/{{caseId}}/{route}",
        path_parameters={"caseId": "case-1"},
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    return invoke(functions.outbound, event)


def test_read_and_thinking_reach_8x8_on_the_gateway(
    gateway_services: Any, functions: SimpleNamespace, fake_8x8: Any
) -> None:
    map_case("case-1", "conv-1")
    assert post(functions, "read", {"readAt": 1234}).status == 204
    assert post(functions, "read", {"authorType": "bot"}).status == 204
    assert fake_8x8.read_receipts[0] == ("conv-1", "user", 1234)
    assert fake_8x8.read_receipts[1][:2] == ("conv-1", "bot")
    assert post(functions, "typing", {"kind": "thinking"}).status == 204
    assert fake_8x8.thinking == ["conv-1"] and fake_8x8.typing == []
    refused = post(functions, "typing", {"kind": "thinking", "authorType": "user"})
    assert refused.status == 400 and "thinking is the bot's" in refused.raw


def test_read_and_thinking_are_400_on_v2(services: Any, functions: SimpleNamespace, fake_8x8: Any) -> None:
    map_case("case-1", "conv-1")
    for route, body in (("read", {}), ("typing", {"kind": "thinking"})):
        answer = post(functions, route, body)
        assert answer.status == 400 and answer.body["error"]["code"] == "UnsupportedByContactCenterApi", answer.raw
    assert fake_8x8.read_receipts == [] and fake_8x8.thinking == []


# ---- delivery status --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"])
def test_a_delivered_message_is_on_the_timeline_and_says_delivered(
    functions: SimpleNamespace, services: Any, fake_8x8: Any, fifo_queues: Any, event_bus: Any, api: str
) -> None:
    from tests.unit.test_handler_outbound import batch_from_queue, process

    fake_8x8.api = api
    map_case("case-1", "conv-1")
    body = {"text": "where is my order?", "clientMessageId": "cm-1"}
    accepted = invoke(functions.outbound, sample_api_event("post_message.json", case_id="case-1", body=body))
    assert accepted.status == 202, accepted.raw
    assert process(functions, batch_from_queue(fifo_queues.outbound_url)) == []
    entries = timeline(services)
    message_id = accepted.body["messageId"]
    assert of_type(entries, "CustomerMessage") == [
        {"messageId": message_id, "clientMessageId": "cm-1", "authorType": "user", "text": "where is my order?"}
    ]
    assert of_type(entries, "MessageDelivered") == [{"messageId": message_id, "clientMessageId": "cm-1"}]
    kinds = [e.type for e in entries]
    assert kinds.index("CustomerMessage") < kinds.index("MessageDelivered")
    item = aws_client("dynamodb").get_item(
        TableName=services.store.table, Key={"pk": {"S": "CASE#case-1"}, "sk": {"S": "CASE"}}
    )["Item"]
    assert int(item["customerActiveAt"]["N"]) > 0  # the idle timer starts over
    assert {"CustomerMessage", "MessageDelivered"} <= {e["detail-type"] for e in event_bus.published()}


# ---- the transcript route ---------------------------------------------------------------------------------------
def test_the_transcript_starts_with_the_opens_history_recorded_once(
    functions: SimpleNamespace, services: Any, fake_8x8: Any
) -> None:
    opened = invoke(functions.lifecycle, sample_api_event("open_conversation.json"))
    assert opened.status in (200, 201), opened.raw
    again = invoke(functions.lifecycle, sample_api_event("open_conversation.json"))  # the channel's retry
    assert again.status == 200, again.raw
    answer = invoke(functions.lifecycle, sample_api_event("case_transcript.json", query={"format": "json"}))
    assert answer.status == 200, answer.raw
    assert [(m["author"]["type"], m["text"]) for m in answer.body["messages"]] == [
        ("bot", "Hello! How can I help?"),
        ("customer", "My order A-7781 has not arrived."),
        ("bot", "Let me hand you over to a person."),
    ]


@pytest.mark.parametrize("api", ["chat-gateway-v1", "chat-api-v2"])
def test_the_transcript_as_json_and_text_from_the_timeline(
    functions: SimpleNamespace, services: Any, fake_8x8: Any, webhook_signer: WebhookSigner, api: str
) -> None:
    from casebridge.escalation.signals import after_delivery

    map_case("case-1001", "conv-1")
    send = gateway_event if api == "chat-gateway-v1" else v2_event
    if api == "chat-gateway-v1":
        from casebridge.contact_center.webhook_gateway import parse_webhook_event

        services.webhook_parser = parse_webhook_event
        send(webhook_signer, services, "e1", "QUEUED", 1_000, queueId="q1", queueName="Support")
        send(webhook_signer, services, "e2", "MEMBERS_CHANGED", 2_000, memberType="agent", change="joined", id="a1")
        send(webhook_signer, services, "e3", "MESSAGE", 4_000, sender={"type": "agent", "id": "a1"}, text="Hi, Ada")
        left = {"memberType": "agent", "change": "left", "id": "a1", "wrapUpCode": "Resolved"}
        send(webhook_signer, services, "e4", "MEMBERS_CHANGED", 5_000, **left)
    else:
        send(webhook_signer, services, "e1", "QUEUED", 1_000, queueId="q1", queueName="Support")
        send(webhook_signer, services, "e2", "AGENT_JOINED", 2_000, agentId="a1", agentName="Alice")
        send(webhook_signer, services, "e3", "TEXT", 4_000, agentId="a1", agentName="Alice", message="Hi, Ada")
        send(webhook_signer, services, "e4", "AGENT_LEFT", 5_000, agentId="a1", agentName="Alice")
    after_delivery(services, services.store.get_case("case-1001"), "m-1", "user", "My parcel?")
    answer = invoke(functions.lifecycle, sample_api_event("case_transcript.json", query={"format": "json"}))
    assert answer.status == 200, answer.raw
    [interaction] = answer.body["interactions"]
    assert interaction["queues"][0]["queueId"] == "q1" and interaction["agents"][0]["id"] == "a1"
    assert interaction["endReason"] == "agent-ended"
    assert interaction["wrapUpCode"] == ("Resolved" if api == "chat-gateway-v1" else None)
    assert [(m["author"]["type"], m["text"]) for m in answer.body["messages"]] == [
        ("agent", "Hi, Ada"),
        ("customer", "My parcel?"),
    ]
    text = functions.lifecycle.lambda_handler(sample_api_event("case_transcript.json"), LambdaContext())
    assert text["statusCode"] == 200 and text["multiValueHeaders"]["Content-Type"][0].startswith("text/plain")
    assert "Customer: My parcel?" in text["body"] and "Hi, Ada" in text["body"]
    assert invoke(functions.lifecycle, sample_api_event("case_transcript.json", query={"format": "pdf"})).status == 400
    assert invoke(functions.lifecycle, sample_api_event("case_transcript.json", case_id="nobody")).status == 404
