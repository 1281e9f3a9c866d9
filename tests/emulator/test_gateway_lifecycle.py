"""Chat Gateway v1 surface: the whole lifecycle and its webhook events, both reopen behaviours."""

from __future__ import annotations

from typing import Any

import pytest

from cc_emulator.config import ScriptConfig
from cc_emulator.control import ControlClient, GatewayClient
from cc_emulator.pytest_plugin import WebhookReceiver, make_test_config
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import GatewayRig, gateway_events, new_gateway_conversation, summary

USER = {
    "name": "Jane Doe",
    "userId": "cust-1",
    "email": "jane@example.com",
    "phone": "+15550100",
    "caseId": "500x",
    "language": "en",
    "additionalProperties": [{"key": "plan", "value": "gold"}],
}
# What a new conversation on queue 101 sends until agent-1 has it.
ASSIGNED = [
    "CONVERSATION_UPDATE:created",
    "CONVERSATION_UPDATE:active",
    "QUEUED:101",
    "MEMBERS_CHANGED:agent:agent-1 joined",
]


def wait_summaries(receiver: WebhookReceiver, conv_id: str, wanted: list[str], timeout: float = 5.0) -> list[str]:
    """Block until the conversation's event labels start with `wanted`; return all labels seen."""

    def done(_: Any) -> list[str] | None:
        labels = [summary(e) for e in gateway_events(receiver, conv_id)]
        return labels if labels[: len(wanted)] == wanted else None

    try:
        result: list[str] = receiver.wait_for(done, timeout)
    except TimeoutError:
        labels = [summary(e) for e in gateway_events(receiver, conv_id)]
        raise AssertionError(f"expected {wanted}, got {labels}") from None
    return result


def test_lifecycle_create_queue_join_messages_transfer_leave_reopen(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, webhook_receiver: WebhookReceiver
) -> None:
    verify = webhook_receiver.events("WEB_HOOK_VERIFY")[0].json()
    assert verify == {"notificationVersion": "Chat Gateway v1.0", "eventType": "WEB_HOOK_VERIFY"}
    history = [{"authorType": "user", "text": "my order is late"}, {"authorType": "bot", "text": "an agent comes"}]
    resp = gw.create_conversation(gw_channel, user=USER, history=history)
    assert resp.status_code == 202 and resp.headers["Content-Type"] == "application/hal+json"
    assert set(resp.json()) == {"conversationId", "createdAt"}
    conv_id = resp.json()["conversationId"]
    start = ASSIGNED
    wait_summaries(webhook_receiver, conv_id, start)
    events = gateway_events(webhook_receiver, conv_id)
    created, active, queued, joined = events[:4]
    assert active["data"]["state"] == "active"
    assert created["data"]["user"] == USER
    assert created["data"]["assignment"] == {"type": "queue", "id": "101"}
    assert created["data"]["channel"] == "ChatAPI"
    assert queued == {
        "eventType": "QUEUED",
        "conversationId": conv_id,
        "timestamp": queued["timestamp"],
        "data": {"queueId": "101", "queueName": "Support"},
    }
    assert joined["data"] == {"memberType": "agent", "change": "joined", "id": "agent-1"}
    assert gw.request("GET", f"/conversations/{conv_id}").json()["assignment"] == {"type": "agent", "id": "agent-1"}

    # Messages both ways: the user's post comes back as a MESSAGE echo, then the agent answers.
    assert gw.post_message(conv_id, "hello?").status_code == 202
    wait_summaries(webhook_receiver, conv_id, [*start, "MESSAGE:user", "MESSAGE:agent"])
    echo, answer = gateway_events(webhook_receiver, conv_id)[4:6]
    assert echo["data"] == {"isEcho": False, "sender": {"id": "cust-1", "type": "user"}, "text": "hello?"}
    assert answer["data"] == {
        "isEcho": False,
        "sender": {"id": "agent-1", "type": "agent"},
        "text": ScriptConfig().reply_text,
    }
    assert gw.post_message(conv_id, "from the bot", "bot").status_code == 202

    # Transfer to Billing: TRANSFER has no data; agent-1 leaves; queued on 102; agent-2 joins.
    emulator.wait_quiet()
    emulator.engine.agent_transfer("agent-1", "102")
    after_bot = [*start, "MESSAGE:user", "MESSAGE:agent", "MESSAGE:bot", "MESSAGE:agent"]
    transfer = [
        "TRANSFER",
        "MEMBERS_CHANGED:agent:agent-1 left",
        "QUEUED:102",
        "MEMBERS_CHANGED:agent:agent-2 joined",
        "MESSAGE:agent",  # agent-2 catches up with the customer's last message
    ]
    wait_summaries(webhook_receiver, conv_id, [*after_bot, *transfer])
    transfer_event = gateway_events(webhook_receiver, conv_id)[len(after_bot)]
    assert set(transfer_event) == {"eventType", "conversationId", "timestamp"}

    # The agent ends the interaction: left, then idle.
    emulator.wait_quiet()
    emulator.engine.agent_leave("agent-2")
    ended = [*after_bot, *transfer, "MEMBERS_CHANGED:agent:agent-2 left", "CONVERSATION_UPDATE:idle"]
    wait_summaries(webhook_receiver, conv_id, ended)
    assert gw.request("GET", f"/conversations/{conv_id}").json()["state"] == "idle"

    # Reopen (default "requeue"): the user writes again, a new interaction on the last queue.
    assert gw.post_message(conv_id, "still broken").status_code == 202
    reopened = [
        "MESSAGE:user",
        "CONVERSATION_UPDATE:active",
        "QUEUED:102",
        "MEMBERS_CHANGED:agent:agent-2 joined",
        "MESSAGE:agent",
    ]
    wait_summaries(webhook_receiver, conv_id, [*ended, *reopened])
    interactions = gw.request("GET", f"/conversations/{conv_id}/interactions").json()["_embedded"]["interactions"]
    assert len(interactions) == 2 and "endTime" in interactions[0] and "endTime" not in interactions[1]
    # No agent name anywhere on the Gateway.
    for req in webhook_receiver.events():
        assert b"Agent" not in req.body and b"agentName" not in req.body


def test_reopen_needs_assignment_waits_for_an_assignment(gw_rig: GatewayRig) -> None:
    emulator, gw, gw_channel, webhook_receiver, control = gw_rig
    assert control.update_settings(gatewayReopen="needs_assignment")["gatewayReopen"] == "needs_assignment"
    conv_id = new_gateway_conversation(gw, gw_channel, user=USER)
    start = ["CONVERSATION_UPDATE:created", "CONVERSATION_UPDATE:active", "QUEUED:101"]
    wait_summaries(webhook_receiver, conv_id, [*start, "MEMBERS_CHANGED:agent:agent-1 joined"])
    emulator.engine.agent_leave("agent-1")
    ended = [
        *start,
        "MEMBERS_CHANGED:agent:agent-1 joined",
        "MEMBERS_CHANGED:agent:agent-1 left",
        "CONVERSATION_UPDATE:idle",
    ]
    wait_summaries(webhook_receiver, conv_id, ended)
    assert gw.post_message(conv_id, "anyone there?").status_code == 202
    emulator.wait_quiet()
    labels = [summary(e) for e in gateway_events(webhook_receiver, conv_id)]
    assert labels == [*ended, "MESSAGE:user"]
    assert gw.request("GET", f"/conversations/{conv_id}").json()["state"] == "idle"
    assert emulator.engine.state()["queues"][0]["waiting"] == []

    # Only an assignment starts the new interaction, on the given queue; the waiting message is answered.
    resp = gw.assign(conv_id, "102")
    assert resp.status_code == 202 and resp.json()["state"] == "active"
    assert resp.json()["assignment"] == {"type": "queue", "id": "102"}
    wait_summaries(
        webhook_receiver,
        conv_id,
        [
            *labels,
            "CONVERSATION_UPDATE:active",
            "QUEUED:102",
            "MEMBERS_CHANGED:agent:agent-2 joined",
            "MESSAGE:agent",
        ],
    )
    transcript = emulator.engine.transcript(conv_id)
    assert transcript["transcript"][-2]["interactionId"] == transcript["interactions"][1]["id"]


def test_assignment_while_queued_moves_the_conversation(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, webhook_receiver: WebhookReceiver
) -> None:
    emulator.engine.set_agent_available("agent-1", False)
    emulator.engine.set_agent_available("agent-2", False)
    conv_id = new_gateway_conversation(gw, gw_channel, user=USER, assignment={"type": "queue", "id": "101"})
    resp = gw.request("PUT", f"/conversations/{conv_id}", json={"assignment": {"type": "queue", "id": "102"}})
    assert resp.status_code == 202
    emulator.engine.set_agent_available("agent-2", True)
    wait_summaries(
        webhook_receiver,
        conv_id,
        [
            "CONVERSATION_UPDATE:created",
            "CONVERSATION_UPDATE:active",
            "QUEUED:101",
            "CONVERSATION_UPDATE:active",
            "QUEUED:102",
            "MEMBERS_CHANGED:agent:agent-2 joined",
        ],
    )
    assert gw.request("PATCH", f"/conversations/{conv_id}", json={"user": {"name": "J", "caseId": "9"}}).json()[
        "user"
    ] == {"name": "J", "caseId": "9"}


def test_user_leaves_then_messages_per_setting(
    gw: GatewayClient,
    gw_channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
) -> None:
    conv_id = new_gateway_conversation(gw, gw_channel, user=USER)
    start = ASSIGNED
    wait_summaries(webhook_receiver, conv_id, start)
    assert gw.user_leaves(conv_id).status_code == 204
    left = [
        *start,
        "MEMBERS_CHANGED:user:cust-1 left",
        "MEMBERS_CHANGED:agent:agent-1 left",
        "CONVERSATION_UPDATE:idle",
    ]
    wait_summaries(webhook_receiver, conv_id, left)
    parts = gw.request("GET", f"/conversations/{conv_id}/participants").json()["_embedded"]["participants"]
    assert {(p["id"], p["type"], p["removed"]) for p in parts} == {("cust-1", "user", True), ("agent-1", "agent", True)}
    # Leaving twice is harmless and says nothing more.
    assert gw.user_leaves(conv_id).status_code == 204

    control.update_settings(gatewayRemovedAcceptsMessages=False)
    refused = gw.post_message(conv_id, "back again")
    assert refused.status_code == 400
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert isinstance(refused.json()["errors"], dict) and refused.json()["errors"]["code"] == "invalid_json_object"

    control.update_settings(gatewayRemovedAcceptsMessages=True)
    assert gw.post_message(conv_id, "back again").status_code == 202
    wait_summaries(webhook_receiver, conv_id, [*left, "MESSAGE:user", "CONVERSATION_UPDATE:active", "QUEUED:101"])
    parts = gw.request("GET", f"/conversations/{conv_id}/participants").json()["_embedded"]["participants"]
    assert ("cust-1", False) in {(p["id"], p["removed"]) for p in parts}


def test_echo_flag_setting_and_bot_sender(gw_rig: GatewayRig) -> None:
    emulator, gw, gw_channel, webhook_receiver, control = gw_rig
    control.update_settings(gatewayEchoIsEcho=True)
    conv_id = new_gateway_conversation(gw, gw_channel, user=USER)
    gw.post_message(conv_id, "bot says", "bot")
    emulator.wait_quiet()
    messages = [e["data"] for e in gateway_events(webhook_receiver, conv_id) if e["eventType"] == "MESSAGE"]
    assert messages[0] == {"isEcho": True, "sender": {"id": "bot", "type": "bot"}, "text": "bot says"}
    assert all(not m["isEcho"] for m in messages if m["sender"]["type"] == "agent")


def test_v2_webhooks_keep_getting_v2_events(
    emulator: EmulatorServer, gw: GatewayClient, webhook_receiver: WebhookReceiver
) -> None:
    """A conversation's events follow its channel's webhook dialect, whichever API created it."""
    _, channel_id = emulator.provision(webhook_receiver.url, "101")  # a v2.0 webhook
    conv_id = new_gateway_conversation(gw, channel_id, user=USER)
    gw.post_message(conv_id, "hi")
    webhook_receiver.wait_for_events("TEXT", conversation_id=conv_id)
    assert webhook_receiver.event_types(conv_id) == ["QUEUED", "AGENT_JOINED", "TEXT"]


def test_scripted_agent_wraps_up_after_idle_time(webhook_receiver: WebhookReceiver) -> None:
    cfg = make_test_config()
    cfg.timings.agent_wrap_up_idle = 0.3
    cfg.agents[1].script = ScriptConfig(wrap_up_idle=0)  # agent-2 never wraps up
    with EmulatorServer(cfg) as emu:
        gw = GatewayClient(emu.base_url)
        _, channel_id = emu.provision(webhook_receiver.url, "101", version="Chat Gateway v1.0")
        first = new_gateway_conversation(gw, channel_id, user=USER)
        second = new_gateway_conversation(gw, channel_id, user={**USER, "caseId": "501x"})
        start = ["CONVERSATION_UPDATE:created", "CONVERSATION_UPDATE:active", "QUEUED:101"]
        # agent-1 handles the first case, wraps it up once idle, then takes the queued second case.
        wait_summaries(
            webhook_receiver,
            first,
            [
                *start,
                "MEMBERS_CHANGED:agent:agent-1 joined",
                "MEMBERS_CHANGED:agent:agent-1 left",
                "CONVERSATION_UPDATE:idle",
            ],
        )
        wait_summaries(webhook_receiver, second, [*start, "MEMBERS_CHANGED:agent:agent-1 joined"])
        # wait_quiet does not wait for wrap-up timers.
        emu.wait_quiet(timeout=1)
        _, billing = emu.provision(webhook_receiver.url, "102", version="chat-gateway-v1")
        third = new_gateway_conversation(gw, billing, user={**USER, "caseId": "502x"})
        wait_summaries(webhook_receiver, third, [*start[:2], "QUEUED:102", "MEMBERS_CHANGED:agent:agent-2 joined"])
        emu.wait_for(lambda _: emu.engine.state()["conversations"][0]["state"] == "idle", timeout=5)
        assert emu.engine.agents["agent-2"].conversation_id == third


@pytest.mark.parametrize("mode", ["requeue", "needs_assignment"])
def test_settings_come_from_config(mode: str) -> None:
    cfg = make_test_config(gateway_reopen=mode, gateway_echo_is_echo=True)
    with EmulatorServer(cfg) as emu:
        settings = ControlClient(emu.base_url).settings()
    assert settings["gatewayReopen"] == mode and settings["gatewayEchoIsEcho"] is True
    assert settings["gatewayRemovedAcceptsMessages"] is True
