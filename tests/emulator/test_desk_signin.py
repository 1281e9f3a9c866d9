"""The agent desk's sign-in: a person at a desk takes the agent off its script, and the sign-in ends when the desk's
page stops its heartbeat (the tab went), so the agent's queues are served again."""

from __future__ import annotations

import requests

from cc_emulator.control import ControlClient, GatewayClient
from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import gateway_events, new_gateway_conversation, summary


def desk_call(emulator: EmulatorServer, agent_id: str, action: str) -> dict[str, object]:
    answer = requests.post(f"{emulator.base_url}/desk/api/agents/{agent_id}/{action}", timeout=5)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def agent_state(control: ControlClient, agent_id: str) -> dict[str, object]:
    agents: list[dict[str, object]] = control.state()["agents"]
    return next(a for a in agents if a["id"] == agent_id)


def test_a_desk_sign_in_without_heartbeats_ends_and_frees_the_agents_queue(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, webhook_receiver: WebhookReceiver
) -> None:
    control = ControlClient(emulator.base_url)
    control.update_settings(deskSignInTtl=60)
    signed_in = desk_call(emulator, "agent-1", "signin")
    assert signed_in["mode"] == "manual" and signed_in["heartbeatSeconds"] == 20
    conv_id = new_gateway_conversation(gw, gw_channel)
    # Signed in at a desk, the agent takes nothing by itself: the conversation waits in its queue.
    queue = next(q for q in control.state()["queues"] if q["id"] == "101")
    assert queue["waiting"] == [conv_id]
    assert agent_state(control, "agent-1")["mode"] == "manual"

    # The page's last heartbeat, under a short TTL; then the tab is gone.
    control.update_settings(deskSignInTtl=0.3)
    desk_call(emulator, "agent-1", "signin")

    def joined(_: object) -> bool:
        return "MEMBERS_CHANGED:agent:agent-1 joined" in [summary(e) for e in gateway_events(webhook_receiver, conv_id)]

    webhook_receiver.wait_for(joined, 10.0)
    assert agent_state(control, "agent-1")["mode"] == "script"
    snapshot = requests.get(f"{emulator.base_url}/desk/api/snapshot", timeout=5).json()
    assert [a["signedIn"] for a in snapshot["agents"] if a["id"] == "agent-1"] == [False]


def test_a_desk_sign_in_that_ends_mid_conversation_hands_it_back_to_the_script(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, webhook_receiver: WebhookReceiver
) -> None:
    """The person accepted, then closed the tab: the scripted agent's idle wrap-up ends the conversation."""
    control = ControlClient(emulator.base_url)
    control.update_settings(deskSignInTtl=60, agentWrapUpIdle=0.2)
    desk_call(emulator, "agent-1", "signin")
    conv_id = new_gateway_conversation(gw, gw_channel)
    assert control.agent_accept("agent-1", conv_id) == conv_id
    control.update_settings(deskSignInTtl=0.3)
    desk_call(emulator, "agent-1", "signin")

    def left(_: object) -> bool:
        return "MEMBERS_CHANGED:agent:agent-1 left" in [summary(e) for e in gateway_events(webhook_receiver, conv_id)]

    webhook_receiver.wait_for(left, 10.0)
    assert agent_state(control, "agent-1")["state"] == "free"
