"""Around an agent's part (ESCALATION.md sections 4-7): the customer going quiet, the Gateway's post-agent
assignment, wrap-up codes chosen by the agent, read receipts both ways and the bot's thinking indicator."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from cc_emulator.control import ChatV2Client, ControlClient, GatewayClient
from cc_emulator.pytest_plugin import ReceivedRequest, WebhookReceiver
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import new_conversation, new_gateway_conversation, summary

BOT_PATH = "/webhook/bot"


def labels(receiver: WebhookReceiver, conv_id: str, path: str | None = None) -> list[str]:
    """Distinct events of one conversation (optionally only those posted to `path`), as short labels."""
    seen: set[str] = set()
    found: list[str] = []
    for r in receiver.events(ok_only=True):
        body = r.json()
        eid = r.headers["x-8x8-event-id"] + r.path
        if body.get("conversationId") != conv_id or eid in seen or (path is not None and r.path != path):
            continue
        seen.add(eid)
        found.append(summary(body))
    return found


def wait_label(receiver: WebhookReceiver, conv_id: str, label: str, path: str | None = None, count: int = 1) -> None:
    try:
        receiver.wait_for(lambda _: labels(receiver, conv_id, path).count(label) >= count, timeout=5)
    except TimeoutError:
        raise AssertionError(f"no {label} (x{count}) at {path}: {labels(receiver, conv_id, path)}") from None


def joined(emulator: EmulatorServer, gw: GatewayClient, channel: str) -> str:
    conv = new_gateway_conversation(gw, channel)
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv)
    return conv


# -- the customer going quiet ---------------------------------------------------------------------


def test_customer_silence_sends_idle_and_the_next_message_active(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, webhook_receiver: WebhookReceiver
) -> None:
    emulator.engine.update_settings({"customerIdleSeconds": 0.3, "agentWrapUpIdle": 0})
    conv = joined(emulator, gw, gw_channel)
    posted: list[int] = []
    for _ in range(3):
        time.sleep(0.1)
        posted.append(int(time.time() * 1000))
        assert gw.post_message(conv, "still here").status_code == 202

    def idles_so_far() -> list[dict[str, Any]]:
        updates = [r.json() for r in webhook_receiver.events("CONVERSATION_UPDATE")]
        return [u for u in updates if u["conversationId"] == conv and u["data"]["state"] == "idle"]

    webhook_receiver.wait_for(lambda _: any(i["timestamp"] >= posted[-1] for i in idles_so_far()), timeout=5)
    idles = idles_so_far()
    # Each idle comes a whole window after the customer's last message before it: every message restarts it.
    for idle in idles:
        assert idle["timestamp"] - max(p for p in posted if p <= idle["timestamp"]) >= 300
    assert idles[-1]["timestamp"] >= posted[-1] + 300
    # The agent is still there: only the customer went quiet.
    assert idles[-1]["data"]["assignment"] == {"type": "agent", "id": "agent-1"}
    assert gw.request("GET", f"/conversations/{conv}").json()["state"] == "idle"
    assert gw.post_message(conv, "back").status_code == 202
    wait_label(webhook_receiver, conv, "CONVERSATION_UPDATE:active", count=2)
    assert gw.request("GET", f"/conversations/{conv}").json()["state"] == "active"
    assert labels(webhook_receiver, conv).count("CONVERSATION_UPDATE:idle") == len(idles)


def test_no_idle_while_the_setting_is_off(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, webhook_receiver: WebhookReceiver
) -> None:
    conv = joined(emulator, gw, gw_channel)
    emulator.engine.update_settings({"customerIdleSeconds": 0.1})  # armed at the next customer message only
    time.sleep(0.3)
    assert "CONVERSATION_UPDATE:idle" not in labels(webhook_receiver, conv)


# -- post-agent assignment ------------------------------------------------------------------------


def register(gw: GatewayClient, conv: str, hook: str, notify: str = "false", **config: Any) -> requests.Response:
    configuration = {"notifyChannelWebhookIfExists": notify, "maxTotalMinutes": 60, "userTimeoutInMinutes": 10}
    body = {"type": "webhook", "id": hook, "configuration": {**configuration, **config}}
    return gw.request("POST", f"/conversations/{conv}/post-agent-assignment", json=body)


@pytest.fixture
def bot_hook(gw: GatewayClient, webhook_receiver: WebhookReceiver) -> str:
    return str(gw.create_webhook(webhook_receiver.url + "/bot", name="bot").json()["id"])


def test_after_the_agent_the_bot_has_the_conversation_until_the_user_times_out(
    emulator: EmulatorServer,
    gw: GatewayClient,
    gw_channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
    bot_hook: str,
) -> None:
    conv = joined(emulator, gw, gw_channel)
    assert register(gw, conv, bot_hook).status_code == 201
    # A transfer is not the end of the agent's part.
    control.agent_transfer("agent-1", "102")
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv, count=3)
    assert labels(webhook_receiver, conv, BOT_PATH) == []

    control.agent_leave("agent-2")
    wait_label(webhook_receiver, conv, "CONVERSATION_UPDATE:active", BOT_PATH)
    assert labels(webhook_receiver, conv, BOT_PATH)[:2] == [
        "MEMBERS_CHANGED:agent:agent-2 left",
        "CONVERSATION_UPDATE:active",
    ]
    handed = next(r.json() for r in webhook_receiver.events("CONVERSATION_UPDATE") if r.path == BOT_PATH)
    assert handed["data"]["assignment"] == {"type": "webhook", "id": bot_hook}
    # The channel's webhook hears nothing more (notifyChannelWebhookIfExists "false").
    channel_after = labels(webhook_receiver, conv, "/webhook")
    assert "MEMBERS_CHANGED:agent:agent-2 left" not in channel_after

    # The user's message stays with the bot: no new interaction.
    assert gw.post_message(conv, "thanks, one more question").status_code == 202
    # From the bot's next message on, userTimeoutInMinutes (10) lasts 0.2 s.
    emulator.engine.update_settings({"postAgentMinuteSeconds": 0.02})
    assert gw.post_message(conv, "Sure, what is it?", author_type="bot").status_code == 202
    wait_label(webhook_receiver, conv, "MESSAGE:bot", BOT_PATH)
    assert len(gw.request("GET", f"/conversations/{conv}/interactions").json()["_embedded"]["interactions"]) == 1
    assert gw.request("GET", f"/conversations/{conv}").json()["state"] == "active"
    # The user does not answer the bot within userTimeoutInMinutes: the conversation finishes.
    wait_label(webhook_receiver, conv, "CONVERSATION_UPDATE:idle", BOT_PATH)
    assert gw.request("GET", f"/conversations/{conv}").json()["state"] == "idle"
    # Used once: the next message reopens on the last queue, events on the channel's webhook again.
    assert gw.post_message(conv, "hello?").status_code == 202
    wait_label(webhook_receiver, conv, "QUEUED:102", "/webhook", count=2)


def test_the_channel_webhook_hears_it_too_when_asked_and_strings_are_numbers(
    emulator: EmulatorServer,
    gw: GatewayClient,
    gw_channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
    bot_hook: str,
) -> None:
    conv = joined(emulator, gw, gw_channel)
    # 8x8's own client sends the minutes as strings.
    assert register(gw, conv, bot_hook, "true", maxTotalMinutes="20", userTimeoutInMinutes="300").status_code == 201
    control.agent_leave("agent-1")
    wait_label(webhook_receiver, conv, "MEMBERS_CHANGED:agent:agent-1 left", BOT_PATH)
    wait_label(webhook_receiver, conv, "MEMBERS_CHANGED:agent:agent-1 left", "/webhook")


def test_a_reassignment_or_the_customer_leaving_ends_the_bot_part(
    emulator: EmulatorServer,
    gw: GatewayClient,
    gw_channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
    bot_hook: str,
) -> None:
    conv = joined(emulator, gw, gw_channel)
    register(gw, conv, bot_hook)
    control.agent_leave("agent-1")
    wait_label(webhook_receiver, conv, "CONVERSATION_UPDATE:active", BOT_PATH)
    assert gw.assign(conv, "101").status_code == 202
    wait_label(webhook_receiver, conv, "MEMBERS_CHANGED:agent:agent-1 joined", "/webhook", count=2)
    state = control.conversation(conv)
    assert state["postAgentAssignment"] is None and len(state["interactions"]) == 2


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"maxTotalMinutes": 19}, "configuration.maxTotalMinutes"),
        ({"userTimeoutInMinutes": "301"}, "configuration.userTimeoutInMinutes"),
        ({"notifyChannelWebhookIfExists": "maybe"}, "configuration.notifyChannelWebhookIfExists"),
    ],
)
def test_post_agent_assignment_refuses_out_of_range_timers(
    config: dict[str, Any], problem: str, emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, bot_hook: str
) -> None:
    conv = new_gateway_conversation(gw, gw_channel)
    answer = register(gw, conv, bot_hook, **config)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalid_parameter" and problem in answer.text
    unknown = register(gw, conv, "no-such-hook")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "resource_not_found"


# -- wrap-up codes --------------------------------------------------------------------------------


def agent_left_events(receiver: WebhookReceiver, conv: str) -> list[dict[str, Any]]:
    def left(r: ReceivedRequest) -> bool:
        body = r.json()
        return body.get("conversationId") == conv and (
            body.get("eventType") == "AGENT_LEFT" or (body.get("data") or {}).get("change") == "left"
        )

    return [r.json() for r in receiver.events() if left(r)]


def test_the_agent_ends_with_a_wrap_up_code_kept_off_the_webhook_unless_asked(
    emulator: EmulatorServer,
    gw: GatewayClient,
    gw_channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
) -> None:
    codes = control.wrap_up_codes("101")
    assert {"id": "2", "name": "Refund issued", "shortCode": "REF"} in codes
    conv = joined(emulator, gw, gw_channel)
    refused = requests.post(f"{emulator.control_url}/agents/agent-1/leave", json={"wrapUpCode": "Nope"}, timeout=5)
    assert refused.status_code == 409 and "Nope" in refused.text
    assert control.agent_leave("agent-1", "Refund issued")["wrapUpCode"]["id"] == "2"
    assert control.conversation(conv)["interactions"][0]["wrapUpCode"] == {
        "id": "2",
        "name": "Refund issued",
        "shortCode": "REF",
    }
    emulator.wait_quiet()
    # 8x8 carries no wrap-up code on the Gateway webhook (ESCALATION.md section 6).
    assert "wrapUpCode" not in agent_left_events(webhook_receiver, conv)[0]["data"]

    emulator.engine.update_settings({"wrapUpCodeOnWebhook": True})
    assert gw.post_message(conv, "again").status_code == 202
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv, count=3)
    control.agent_leave("agent-1", "1")
    emulator.wait_quiet()
    assert agent_left_events(webhook_receiver, conv)[-1]["data"]["wrapUpCode"] == "Resolved"


def test_v2_agent_left_carries_the_code_with_the_setting(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver, control: ControlClient
) -> None:
    emulator.engine.update_settings({"wrapUpCodeOnWebhook": True})
    conv = new_conversation(v2, channel)
    emulator.wait_for_delivery("AGENT_JOINED", conv)
    control.agent_leave("agent-1", "Follow-up needed")
    emulator.wait_for_delivery("AGENT_LEFT", conv)
    assert agent_left_events(webhook_receiver, conv)[0]["wrapUpCode"] == "Follow-up needed"


def test_a_scripted_agent_uses_its_scripts_code(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, control: ControlClient
) -> None:
    control.add_queue("103", "Returns")
    control.add_agent("sam", ["103"], script={"leave_after": 1, "wrap_up_code": "Resolved"})
    conv = new_gateway_conversation(gw, gw_channel)
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv)
    control.agent_leave("agent-1")
    gw.assign(conv, "103")
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv, count=3)
    gw.post_message(conv, "bye")
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv, count=4)
    interactions = control.conversation(conv)["interactions"]
    assert [i["wrapUpCode"] and i["wrapUpCode"]["name"] for i in interactions] == [None, "Resolved"]


# -- read receipts and thinking -------------------------------------------------------------------


def test_read_receipts_both_ways(
    emulator: EmulatorServer,
    gw: GatewayClient,
    gw_channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
) -> None:
    emulator.engine.update_settings({"agentWrapUpIdle": 0})
    conv = joined(emulator, gw, gw_channel)
    read_at = int(time.time() * 1000)
    path = f"/conversations/{conv}/read-receipt"
    assert gw.request("POST", path, json={"authorType": "user", "readAt": read_at}).status_code == 204
    assert gw.request("POST", path, json={"authorType": "user", "readAt": read_at - 5}).status_code == 204
    assert control.conversation(conv)["readBy"] == {"user": read_at}

    # The agent reads: nothing on the webhook by default (8x8: no channel sends read receipts yet, T19)...
    control.agent_read("agent-1", read_at)
    emulator.wait_quiet()
    assert not [r for r in webhook_receiver.events("ACTIVITY") if r.json()["data"]["name"] == "read-receipts"]
    # ...and GATEWAY.md's documented ACTIVITY with the setting on.
    emulator.engine.update_settings({"gatewayReadReceipts": True})
    control.agent_read("agent-1", read_at + 1)
    control.agent_read("agent-1", read_at + 1)  # nothing new read: no second event
    emulator.wait_quiet()
    receipts = [r.json() for r in webhook_receiver.events("ACTIVITY") if r.json()["data"]["name"] == "read-receipts"]
    assert [r["data"]["value"] for r in receipts] == [
        [{"timestamp": read_at + 1, "users": [{"id": "agent-1", "type": "agent"}]}]
    ]
    assert receipts[0]["timestamp"] == read_at + 1


def test_thinking_shows_until_the_bot_writes(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, control: ControlClient
) -> None:
    conv = new_gateway_conversation(gw, gw_channel)
    before = int(time.time() * 1000)
    answer = gw.request("POST", f"/conversations/{conv}/thinking", json={"maxThinkingTimeSeconds": 30})
    assert answer.status_code == 204
    until = control.conversation(conv)["thinkingUntil"]
    assert before + 30_000 <= until <= int(time.time() * 1000) + 30_000
    gw.post_message(conv, "Here is what I found", author_type="bot")
    assert control.conversation(conv)["thinkingUntil"] is None
