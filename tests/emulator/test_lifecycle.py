"""Conversation lifecycle: scripted agents, reopen, transfer, customer leaves, manual agents."""

from __future__ import annotations

import pytest

from cc_emulator.config import AgentConfig, QueueConfig, ScriptConfig
from cc_emulator.control import ChatV2Client, ControlClient
from cc_emulator.pytest_plugin import WebhookReceiver, make_test_config
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import new_conversation


def test_create_conversation_queues_then_agent_joins_and_replies(
    v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver
) -> None:
    conv_id = new_conversation(v2, channel, history=[{"text": "my order is late", "type": "user"}])
    joined = webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv_id)[0].json()
    assert joined["agentId"] == "agent-1"
    assert joined["agentName"] == "Alice Agent"
    assert joined["messageType"] == "SYSTEM"
    assert v2.post_message(conv_id, "hello?").status_code == 202
    text = webhook_receiver.wait_for_events("TEXT", conversation_id=conv_id)[0].json()
    assert text["messageType"] == "AGENT"
    assert text["message"] == ScriptConfig().reply_text
    assert text["agentId"] == "agent-1"
    assert isinstance(text["timestamp"], int)
    assert webhook_receiver.event_types(conv_id) == ["QUEUED", "AGENT_JOINED", "TEXT"]
    queued = webhook_receiver.events("QUEUED")[0].json()
    assert queued == {
        "eventType": "QUEUED",
        "messageType": "SYSTEM",
        "conversationId": conv_id,
        "queueId": "101",
        "queueName": "Support",
        "timestamp": queued["timestamp"],
    }
    verify = webhook_receiver.events("WEB_HOOK_VERIFY")[0].json()
    assert verify == {"notificationVersion": "v2.0", "eventType": "WEB_HOOK_VERIFY"}


def test_agent_leaves_after_n_messages_then_customer_reopens(
    emulator_config: object, webhook_receiver: WebhookReceiver
) -> None:
    cfg = make_test_config()
    cfg.agents[0].script = ScriptConfig(kind="echo", leave_after=2, farewell="bye")
    with EmulatorServer(cfg) as emu:
        v2 = ChatV2Client(emu.base_url, cfg.tenant_id)
        _, channel_id = emu.provision(webhook_receiver.url, "101")
        conv_id = new_conversation(v2, channel_id, history=[{"text": "first", "type": "user"}])
        webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv_id)
        v2.post_message(conv_id, "one")
        webhook_receiver.wait_for_events("TEXT", conversation_id=conv_id)
        v2.post_message(conv_id, "two")
        webhook_receiver.wait_for_events("AGENT_LEFT", conversation_id=conv_id)
        texts = [r.json()["message"] for r in webhook_receiver.events("TEXT")]
        assert texts == ["echo: one", "bye"]
        conv = v2.request("GET", f"/conversations/{conv_id}").json()
        assert len(conv["interactions"]) == 1 and "endTime" in conv["interactions"][0]
        # Reopen: a new message after AGENT_LEFT queues a new interaction on the same conversation.
        assert v2.post_message(conv_id, "still broken").status_code == 202
        webhook_receiver.wait_for_events("AGENT_JOINED", count=2, conversation_id=conv_id)
        webhook_receiver.wait_for_events("TEXT", count=3, conversation_id=conv_id)
        assert webhook_receiver.event_types(conv_id) == [
            "QUEUED",
            "AGENT_JOINED",
            "TEXT",
            "TEXT",
            "AGENT_LEFT",
            "QUEUED",
            "AGENT_JOINED",
            "TEXT",
        ]
        transcript = emu.engine.transcript(conv_id)
        assert [m["text"] for m in transcript["transcript"]] == [
            "first",
            "one",
            "echo: one",
            "two",
            "bye",
            "still broken",
            "echo: still broken",
        ]
        assert len(transcript["interactions"]) == 2
        assert transcript["interactions"][1]["queueId"] == "101"
        conv = v2.request("GET", f"/conversations/{conv_id}").json()
        assert len(conv["interactions"]) == 2


def test_scripted_transfer_to_other_queue(webhook_receiver: WebhookReceiver) -> None:
    cfg = make_test_config()
    cfg.agents[0].script = ScriptConfig(transfer_to="102", transfer_after=1)
    with EmulatorServer(cfg) as emu:
        v2 = ChatV2Client(emu.base_url, cfg.tenant_id)
        _, channel_id = emu.provision(webhook_receiver.url, "101")
        conv_id = new_conversation(v2, channel_id)
        webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv_id)
        v2.post_message(conv_id, "I need billing")
        joined = webhook_receiver.wait_for_events("AGENT_JOINED", count=2, conversation_id=conv_id)
        # The agent of the billing queue greets nobody but answers the pending customer message.
        webhook_receiver.wait_for_events("TEXT", conversation_id=conv_id)
        assert webhook_receiver.event_types(conv_id) == [
            "QUEUED",
            "AGENT_JOINED",
            "TRANSFER",
            "AGENT_LEFT",
            "QUEUED",
            "AGENT_JOINED",
            "TEXT",
        ]
        assert [j.json()["agentId"] for j in joined] == ["agent-1", "agent-2"]
        queued = webhook_receiver.events("QUEUED")
        assert [q.json()["queueId"] for q in queued] == ["101", "102"]
        assert queued[1].json()["queueName"] == "Billing"
        left = webhook_receiver.events("AGENT_LEFT")[0].json()
        assert left["agentId"] == "agent-1"
        assert emu.engine.transcript(conv_id)["lastQueueId"] == "102"


def test_customer_leaves_frees_agent_and_sends_agent_left(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver
) -> None:
    conv_id = new_conversation(v2, channel)
    webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv_id)
    assert emulator.engine.agents["agent-1"].conversation_id == conv_id
    assert v2.customer_leaves(conv_id).status_code == 204
    left = webhook_receiver.wait_for_events("AGENT_LEFT", conversation_id=conv_id)[0].json()
    assert left["agentId"] == "agent-1"
    assert emulator.engine.agents["agent-1"].conversation_id is None
    # The freed agent takes the next conversation.
    conv2 = new_conversation(v2, channel)
    assert webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv2)[0].json()["agentId"] == "agent-1"
    # Leaving again is harmless.
    assert v2.customer_leaves(conv_id).status_code == 204


def test_customer_leaves_while_queued_sends_no_agent_left(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver, control: ControlClient
) -> None:
    control.set_agent_available("agent-1", False)
    conv_id = new_conversation(v2, channel)
    webhook_receiver.wait_for_events("QUEUED", conversation_id=conv_id)
    assert v2.customer_leaves(conv_id).status_code == 204
    control.set_agent_available("agent-1", True)
    emulator.wait_quiet()
    assert webhook_receiver.event_types(conv_id) == ["QUEUED"]
    assert emulator.engine.transcript(conv_id)["interactions"][0]["state"] == "ended"


def test_agent_sees_full_history_across_interactions(
    v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver, control: ControlClient
) -> None:
    history = [{"text": "h1", "type": "user"}, {"text": "bot says", "type": "bot"}]
    conv_id = new_conversation(v2, channel, history=history)
    webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv_id)
    v2.post_message(conv_id, "m1")
    webhook_receiver.wait_for_events("TEXT", conversation_id=conv_id)
    control.agent_leave("agent-1")
    webhook_receiver.wait_for_events("AGENT_LEFT", conversation_id=conv_id)
    v2.post_message(conv_id, "m2", author_type="bot")
    webhook_receiver.wait_for_events("AGENT_JOINED", count=2, conversation_id=conv_id)
    seen = control.conversation(conv_id)
    assert [(m["authorType"], m["text"]) for m in seen["transcript"]] == [
        ("user", "h1"),
        ("bot", "bot says"),
        ("user", "m1"),
        ("agent", ScriptConfig().reply_text),
        ("bot", "m2"),
    ]
    assert seen["transcript"][0]["history"] is True
    msgs = v2.request("GET", f"/conversations/{conv_id}/messages").json()["messages"]
    assert [m["originalText"] for m in msgs] == ["h1", "bot says", "m1", ScriptConfig().reply_text, "m2"]
    first_interaction = seen["interactions"][0]["id"]
    only_first = v2.request("GET", f"/conversations/{conv_id}/messages", params={"interaction-id": first_interaction})
    assert len(only_first.json()["messages"]) == 4


@pytest.fixture
def manual_config() -> object:
    cfg = make_test_config()
    cfg.queues.append(QueueConfig("103", "Escalations"))
    cfg.agents = [
        AgentConfig("m1", "Manual One", ["101"], mode="manual"),
        AgentConfig("m2", "Manual Two", ["103"], mode="manual"),
    ]
    return cfg


def test_manual_agent_step_by_step(manual_config: object, webhook_receiver: WebhookReceiver) -> None:
    assert not isinstance(manual_config, type)
    with EmulatorServer(manual_config) as emu:  # type: ignore[arg-type]
        v2 = ChatV2Client(emu.base_url, emu.config.tenant_id)
        control = ControlClient(emu.base_url)
        _, channel_id = control.provision(webhook_receiver.url, "101")
        conv_id = new_conversation(v2, channel_id)
        webhook_receiver.wait_for_events("QUEUED", conversation_id=conv_id)
        emu.wait_quiet()
        assert webhook_receiver.event_types(conv_id) == ["QUEUED"]  # manual agents never auto-accept
        assert control.agent_accept("m1") == conv_id
        webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv_id)
        v2.post_message(conv_id, "anyone?")
        control.agent_reply("m1", "Hi, Manual One here")
        text = webhook_receiver.wait_for_events("TEXT", conversation_id=conv_id)[0].json()
        assert text == {
            "eventType": "TEXT",
            "messageType": "AGENT",
            "conversationId": conv_id,
            "agentId": "m1",
            "agentName": "Manual One",
            "message": "Hi, Manual One here",
            "timestamp": text["timestamp"],
        }
        control.agent_transfer("m1", "103")
        webhook_receiver.wait_for_events("QUEUED", count=2, conversation_id=conv_id)
        assert control.agent_accept("m2", conv_id) == conv_id
        control.agent_leave("m2")
        webhook_receiver.wait_for_events("AGENT_LEFT", count=2, conversation_id=conv_id)
        assert webhook_receiver.event_types(conv_id) == [
            "QUEUED",
            "AGENT_JOINED",
            "TEXT",
            "TRANSFER",
            "AGENT_LEFT",
            "QUEUED",
            "AGENT_JOINED",
            "AGENT_LEFT",
        ]
        parts = v2.request("GET", f"/conversations/{conv_id}/participants").json()["participants"]
        assert set(parts) == {"customer", "m1", "m2"}
        # Control errors: busy/idle agents and unknown ids.
        with pytest.raises(Exception, match="409"):
            control.agent_reply("m1", "not in a conversation")
        with pytest.raises(Exception, match="404"):
            control.agent_accept("nobody")
