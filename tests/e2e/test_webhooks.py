"""8x8's webhook events over HTTP through the local stack: each event type the emulator sends, what the case and
the business channel make of it, and the deliveries that must be refused without a trace."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests

from cc_emulator.delivery import Event
from scripts.local_stack.stack import LocalStack
from tests.e2e.e2e_support import BILLING, Client, wait_until

pytestmark = pytest.mark.e2e


def item_count(stack: LocalStack) -> int:
    return int(stack.aws.dynamodb.scan(TableName=stack.table_name, Select="COUNT", ConsistentRead=True)["Count"])


def signed(stack: LocalStack, payload: dict[str, Any], *, bad_signature: bool = False) -> tuple[bytes, dict[str, str]]:
    """A delivery signed by the emulator's own key, as 8x8 would send it."""
    event = Event.build(str(payload.get("eventType")), stack.webhook_url, payload, payload.get("conversationId"))
    headers = stack.emulator.engine.delivery.headers_for(event, 0, bad_signature=bad_signature)
    return event.body, headers


def agent_message_event(stack: LocalStack) -> str:
    """8x8's event type for an agent's message in the stack's API dialect."""
    return "TEXT" if stack.options.api == "chat-api-v2" else "MESSAGE"


def delivered_text(body: dict[str, Any]) -> Any:
    """The text of an agent message delivery (v2: flat `message`; Gateway: `data.text`)."""
    return body.get("message") if "message" in body else (body.get("data") or {}).get("text")


def channel_types(stack: LocalStack, case_id: str) -> list[str]:
    assert stack.channel is not None
    return [e.detail_type for e in stack.channel.events_for(case_id)]


def test_queued(client: Client, case_id: str, stack: LocalStack) -> None:
    answer = client.open(case_id)
    assert answer.status_code == 201
    queued = client.wait_event(case_id, "Queued")[0]
    assert queued["queueId"] == "support"
    assert queued["queueName"] == "Support"
    assert queued["conversationId"] == answer.json()["conversationId"]
    assert stack.channel is not None
    stack.channel.wait_for(case_id, "Queued", where=lambda e: e.detail.get("queueId") == "support")


def test_agent_joined(client: Client, opened: tuple[str, str], stack: LocalStack) -> None:
    case_id, _ = opened
    case = client.case(case_id)
    joined = client.wait_event(case_id, "AgentJoined")[0]
    assert joined["agentId"] == case["agent"]["id"]
    assert joined.get("agentName") == case["agent"]["name"]  # the Gateway has no agent names: both absent
    assert stack.channel is not None
    stack.channel.wait_for(case_id, "AgentJoined")


def test_text(client: Client, opened: tuple[str, str], stack: LocalStack) -> None:
    case_id, _ = opened
    agent_id = client.agent_of(case_id)
    client.agent(agent_id, "reply", text="How can I help?")
    message = client.wait_event(case_id, "AgentMessage", text="How can I help?")[0]
    assert message["agentId"] == agent_id
    assert stack.channel is not None
    event = stack.channel.wait_for(case_id, "AgentMessage")[0]
    assert event.detail["text"] == "How can I help?"
    assert client.case(case_id)["state"] == "with_agent"


def test_transfer(client: Client, opened: tuple[str, str], stack: LocalStack) -> None:
    case_id, _ = opened
    first_agent = client.agent_of(case_id)
    client.agent(first_agent, "transfer", queueId=BILLING)
    client.wait_event(case_id, "Transferred")
    client.wait_event(case_id, "AgentLeft", agentId=first_agent)
    client.wait_event(case_id, "Queued", queueId=BILLING)
    joined = client.wait_event(case_id, "AgentJoined", 2)[-1]
    assert joined["agentId"].startswith("b")
    case = wait_until("billing agent on the case", lambda: (c := client.case(case_id))["agent"] and c)
    assert case["state"] == "with_agent"
    assert case["agent"]["id"] == joined["agentId"]
    assert case["queue"]["id"] == BILLING
    assert case["transferPending"] is False
    types = client.types(case_id)
    assert types.index("Transferred") < types.index("AgentLeft")
    assert stack.channel is not None
    stack.channel.wait_for(case_id, "Transferred")


def test_agent_left(client: Client, opened: tuple[str, str], stack: LocalStack) -> None:
    case_id, conversation_id = opened
    agent_id = client.agent_of(case_id)
    client.agent(agent_id, "leave")
    client.wait_event(case_id, "AgentLeft", agentId=agent_id)
    case = client.wait_state(case_id, "agent_left")
    assert case["agent"] is None
    assert client.agent_view(conversation_id)["interactions"][-1]["state"] == "ended"
    assert stack.channel is not None
    stack.channel.wait_for(case_id, "AgentLeft")


def test_web_hook_verify(stack: LocalStack) -> None:
    # The emulator verified the webhook when the stack provisioned it...
    provisioned = stack.emulator.deliveries(event_type="WEB_HOOK_VERIFY", ok_only=True)
    assert any(d.uri == stack.webhook_url for d in provisioned)
    # ... answers 2xx to 8x8's verify endpoint's call...
    version = "v2.0" if stack.options.api == "chat-api-v2" else "Chat Gateway v1.0"
    record = stack.emulator.engine.verify_webhook_uri(stack.webhook_url, version)
    assert record.status == 200
    # ... and a signed verification leaves only its receipt (so a replay of its id with another body is refused).
    before = item_count(stack)
    body, headers = signed(stack, {"eventType": "WEB_HOOK_VERIFY", "notificationVersion": version})
    answer = requests.post(stack.webhook_url, data=body, headers=headers, timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "verified"}
    assert item_count(stack) == before + 1


def test_unsigned_webhook_is_401_and_writes_nothing(client: Client, opened: tuple[str, str], stack: LocalStack) -> None:
    case_id, conversation_id = opened
    time.sleep(0.3)  # let the opening's own events settle
    before_items, before_case = item_count(stack), client.case(case_id)
    before_channel = channel_types(stack, case_id)
    payload: dict[str, Any] = {"eventType": "TEXT", "messageType": "AGENT", "conversationId": conversation_id}
    payload |= {"agentId": "x"}
    payload |= {"agentName": "Mallory", "message": "click this link", "timestamp": int(time.time() * 1000)}
    answer = requests.post(stack.webhook_url, json=payload, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"]
    time.sleep(0.5)
    assert item_count(stack) == before_items
    assert client.case(case_id) == before_case
    assert "click this link" not in json.dumps(client.timeline(case_id))
    assert channel_types(stack, case_id) == before_channel


@pytest.mark.parametrize("tamper", ["body", "signature", "tenant", "stale"])
def test_badly_signed_webhook_is_401_and_writes_nothing(
    client: Client, opened: tuple[str, str], stack: LocalStack, tamper: str
) -> None:
    case_id, conversation_id = opened
    time.sleep(0.3)
    before_items, before_case = item_count(stack), client.case(case_id)
    payload = {
        "eventType": "AGENT_LEFT",
        "messageType": "SYSTEM",
        "conversationId": conversation_id,
        "agentId": "x",
        "agentName": "Mallory",
        "timestamp": int(time.time() * 1000),
    }
    body, headers = signed(stack, payload, bad_signature=tamper == "signature")
    if tamper == "body":
        body = body.replace(b"Mallory", b"Mallorx")
    elif tamper == "tenant":
        headers["x-8x8-tenant-id"] = "other-tenant"
    elif tamper == "stale":
        headers["x-8x8-transmission-time"] = str(int(time.time() * 1000) - 3_600_000)
    answer = requests.post(stack.webhook_url, data=body, headers=headers, timeout=10)
    assert answer.status_code == 401, answer.text
    time.sleep(0.3)
    assert item_count(stack) == before_items
    assert client.case(case_id) == before_case


def reply_with_delivery_fault(
    client: Client, opened: tuple[str, str], stack: LocalStack, fault: str, label: str
) -> tuple[str, str, str]:
    """The agent replies with a fresh text while the next delivery of its event has `fault`:
    returns (case id, event type, text)."""
    case_id, _ = opened
    event_type = agent_message_event(stack)
    stack.emulator.add_fault(fault, event_type, count=1)
    text = f"{label} {uuid.uuid4().hex[:6]}"
    client.agent(client.agent_of(case_id), "reply", text=text)
    return case_id, event_type, text


def test_a_refused_delivery_is_recorded_once_when_8x8_retries(
    client: Client, opened: tuple[str, str], stack: LocalStack
) -> None:
    case_id, event_type, text = reply_with_delivery_fault(client, opened, stack, "bad_signature", "retried")
    client.wait_event(case_id, "AgentMessage", text=text)
    # The connector publishes before it answers 8x8: the emulator logs the 200 a moment after the event is out.
    attempts = wait_until(
        "the retry's answer logged",
        lambda: (
            (found := [d for d in stack.emulator.deliveries(event_type=event_type) if delivered_text(d.body) == text])
            and len(found) >= 2
            and found
        ),
    )
    assert [d.status for d in attempts][:2] == [401, 200]
    time.sleep(0.3)
    assert [e.get("text") for e in client.timeline(case_id)].count(text) == 1


def test_a_duplicate_delivery_is_recorded_and_published_once(
    client: Client, opened: tuple[str, str], stack: LocalStack
) -> None:
    case_id, event_type, text = reply_with_delivery_fault(client, opened, stack, "duplicate", "twice")
    attempts = wait_until(
        "two deliveries",
        lambda: (
            (
                found := [
                    d
                    for d in stack.emulator.deliveries(event_type=event_type, ok_only=True)
                    if delivered_text(d.body) == text
                ]
            )
            and len(found) == 2
            and found
        ),
    )
    assert attempts[0].event_id == attempts[1].event_id
    client.wait_event(case_id, "AgentMessage", text=text)
    assert stack.channel is not None
    stack.channel.wait_for(case_id, "AgentMessage", where=lambda e: e.detail.get("text") == text)
    time.sleep(0.5)
    assert [e.get("text") for e in client.timeline(case_id)].count(text) == 1
    assert len([e for e in stack.channel.events_for(case_id, "AgentMessage") if e.detail.get("text") == text]) == 1


# -- the outbound side's retries, through the SQS poller ------------------------------------------


def test_a_failing_8x8_send_is_retried_until_delivered(
    client: Client, opened: tuple[str, str], stack: LocalStack
) -> None:
    case_id, conversation_id = opened
    stack.emulator.add_fault("status", "post_message", count=2, status=503)
    assert client.post(case_id, "eventually").status_code == 202
    wait_until(
        "delivery after two 503s",
        lambda: any(m["text"] == "eventually" for m in client.agent_view(conversation_id)["transcript"]),
        timeout=15,
    )
    assert "MessageFailed" not in client.types(case_id)


def refuse_one_send(client: Client, case_id: str, stack: LocalStack) -> str:
    """8x8 refuses the next message (400, not retryable); returns the message id."""
    stack.emulator.add_fault("status", "post_message", count=1, status=400)
    accepted = client.post(case_id, "refused")
    assert accepted.status_code == 202
    return str(accepted.json()["messageId"])


def test_a_refused_send_goes_to_the_dead_letter_queue(
    client: Client, opened: tuple[str, str], stack: LocalStack
) -> None:
    case_id, conversation_id = opened
    message_id = refuse_one_send(client, case_id, stack)
    assert stack.channel is not None
    failed = stack.channel.wait_for(case_id, "MessageFailed")[0]
    assert failed.detail["messageId"] == message_id
    assert failed.detail["attempts"] == 1
    dlq_url = stack.environment["OUTBOUND_DLQ_URL"]
    answer = stack.aws.sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    bodies = [json.loads(m["Body"]) for m in answer.get("Messages", [])]
    assert any(b["messageId"] == message_id for b in bodies)
    assert not any(m["text"] == "refused" for m in client.agent_view(conversation_id)["transcript"])


def test_the_timeline_shows_a_failed_message(client: Client, opened: tuple[str, str], stack: LocalStack) -> None:
    case_id, _ = opened
    message_id = refuse_one_send(client, case_id, stack)
    assert stack.channel is not None
    stack.channel.wait_for(case_id, "MessageFailed")
    answer = client.call("GET", f"/cases/{case_id}/events", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    failed = [e for e in answer.json()["events"] if e["type"] == "MessageFailed"]
    assert failed[0]["messageId"] == message_id
    assert failed[0]["attempts"] == 1
