"""What the agent desk's snapshot says around a hand-off: the wrap-up codes of the conversation's queue, "Seen" on
the agent's messages the customer's side read, the bot thinking, the customer gone quiet, a queue's staffing."""

from __future__ import annotations

import time
from typing import Any

import requests

from cc_emulator.control import ControlClient, GatewayClient
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import new_gateway_conversation


def snapshot(emulator: EmulatorServer, agent: str) -> dict[str, Any]:
    answer = requests.get(f"{emulator.desk_url}/api/snapshot", params={"agent": agent}, timeout=5)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_desk_snapshot_shows_the_hand_off(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, control: ControlClient
) -> None:
    emulator.engine.update_settings({"agentWrapUpIdle": 0, "customerIdleSeconds": 0.2})
    conv = new_gateway_conversation(gw, gw_channel)
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv)
    reply = control.agent_reply("agent-1", "Let me check")
    view = snapshot(emulator, "agent-1")["conversation"]
    assert [c["name"] for c in view["wrapUpCodes"]][:2] == ["Resolved", "Refund issued"]
    sent = next(m for m in view["messages"] if m["id"] == reply["id"])
    assert sent["seen"] is False and view["botThinking"] is False

    gw.request("POST", f"/conversations/{conv}/read-receipt", json={"authorType": "user", "readAt": sent["timestamp"]})
    gw.request("POST", f"/conversations/{conv}/thinking", json={"authorType": "bot", "maxThinkingTimeSeconds": 5})
    view = snapshot(emulator, "agent-1")["conversation"]
    assert next(m for m in view["messages"] if m["id"] == reply["id"])["seen"] is True
    assert view["botThinking"] is True

    gw.post_message(conv, "ok")
    deadline = time.monotonic() + 5
    while not snapshot(emulator, "agent-1")["conversation"]["customerIdle"]:
        assert time.monotonic() < deadline, "the customer never counted as gone quiet"
        time.sleep(0.05)
    view = snapshot(emulator, "agent-1")["conversation"]
    # A scripted agent reads what it answers; a desk reads what it shows (POST /agents/{id}/read).
    assert view["agentReadAt"] >= view["lastCustomerAt"]
    control.agent_read("agent-1", view["agentReadAt"] + 1000)
    assert snapshot(emulator, "agent-1")["conversation"]["agentReadAt"] == view["agentReadAt"] + 1000

    control.set_queue_status("102", "empty")
    queues = {q["id"]: q["status"] for q in snapshot(emulator, "agent-1")["queues"]}
    assert queues == {"101": "open", "102": "empty"}
