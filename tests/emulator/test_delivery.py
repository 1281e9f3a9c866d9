"""At-least-once delivery: retries, the delivery log, duplicate / out-of-order / bad-signature faults."""

from __future__ import annotations

from cc_emulator.control import ChatV2Client, ControlClient
from cc_emulator.pytest_plugin import ReceivedRequest, WebhookReceiver
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import V2Rig, jwk_for, new_conversation, verify_8x8_signature


def test_non_2xx_is_retried_with_same_event_id_and_new_transmission_time(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver
) -> None:
    def fail_queued_twice(req: ReceivedRequest) -> int | None:
        if req.event_type == "QUEUED" and int(req.headers["x-8x8-retry"]) < 2:
            return 503
        return None

    webhook_receiver.responder = fail_queued_twice
    conv_id = new_conversation(v2, channel)
    attempts = webhook_receiver.wait_for_events("QUEUED", count=3, conversation_id=conv_id)
    assert [a.headers["x-8x8-retry"] for a in attempts] == ["0", "1", "2"]
    assert len({a.headers["x-8x8-event-id"] for a in attempts}) == 1
    tts = [int(a.headers["x-8x8-transmission-time"]) for a in attempts]
    assert tts == sorted(tts) and len(set(tts)) == 3
    assert len({a.body for a in attempts}) == 1
    jwk = jwk_for(emulator, emulator.engine.keys.active.kid)
    assert all(verify_8x8_signature(a.headers, a.body, jwk) for a in attempts)
    emulator.wait_for_delivery("QUEUED", conv_id)
    log = emulator.deliveries("QUEUED", conv_id)
    assert [(r.retry, r.status, r.outcome) for r in log] == [
        (0, 503, "retrying"),
        (1, 503, "retrying"),
        (2, 200, "delivered"),
    ]
    assert log[0].event_id == attempts[0].headers["x-8x8-event-id"]


def test_gives_up_after_max_attempts_and_timeouts_count_as_failures(
    emulator: EmulatorServer, webhook_receiver: WebhookReceiver
) -> None:
    emulator.engine.config.timings.delivery_timeout = 0.2
    webhook_receiver.delay = 0.5  # longer than the delivery timeout
    emulator.provision(webhook_receiver.url, "101")
    records = emulator.wait_for(
        lambda recs: [r for r in recs if r.event_type == "WEB_HOOK_VERIFY" and r.outcome == "gave_up"], timeout=10
    )
    attempts = emulator.deliveries("WEB_HOOK_VERIFY")
    assert [r.retry for r in attempts] == [0, 1, 2, 3]  # fast timings: 4 attempts
    assert all(r.error == "timeout" for r in attempts)
    assert records[0].retry == 3


def test_delivery_log_via_control_api(v2: ChatV2Client, channel: str, control: ControlClient) -> None:
    conv_id = new_conversation(v2, channel)
    found = control.wait_for_deliveries("AGENT_JOINED", conv_id)
    assert found[0]["status"] == 200 and found[0]["body"]["agentId"] == "agent-1"
    all_for_conv = control.deliveries(conversation_id=conv_id)
    assert [d["event_type"] for d in all_for_conv] == ["QUEUED", "AGENT_JOINED"]
    for key in ("event_id", "event_type", "conversation_id", "retry", "status", "error", "time"):
        assert key in all_for_conv[0]


def test_duplicate_delivery_fault(v2_rig: V2Rig) -> None:
    emulator, v2, channel, webhook_receiver, control = v2_rig
    control.add_fault("duplicate", "QUEUED", count=1)
    conv_id = new_conversation(v2, channel)
    webhook_receiver.wait_for_events("AGENT_JOINED", conversation_id=conv_id)
    queued = webhook_receiver.wait_for_events("QUEUED", count=2, conversation_id=conv_id)
    assert queued[0].headers["x-8x8-event-id"] == queued[1].headers["x-8x8-event-id"]
    assert queued[0].body == queued[1].body
    emulator.wait_for_delivery("QUEUED", conv_id, count=2)
    assert [r.duplicate for r in emulator.deliveries("QUEUED", conv_id)] == [False, True]


def test_out_of_order_fault_holds_event_until_next(
    v2: ChatV2Client,
    channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
) -> None:
    control.add_fault("out_of_order", "QUEUED", count=1)
    conv_id = new_conversation(v2, channel)
    webhook_receiver.wait_for_events("QUEUED", conversation_id=conv_id)
    assert webhook_receiver.event_types(conv_id) == ["AGENT_JOINED", "QUEUED"]


def test_out_of_order_event_is_released_when_nothing_follows(v2_rig: V2Rig) -> None:
    emulator, v2, channel, webhook_receiver, control = v2_rig
    control.set_agent_available("agent-1", False)
    control.add_fault("out_of_order", "QUEUED", count=1)
    conv_id = new_conversation(v2, channel)
    got = webhook_receiver.wait_for_events("QUEUED", conversation_id=conv_id, timeout=3)
    assert got[0].json()["conversationId"] == conv_id
    assert emulator.wait_for_delivery("QUEUED", conv_id)[0].out_of_order is True


def test_bad_signature_fault_then_valid_retry(v2_rig: V2Rig) -> None:
    emulator, v2, channel, webhook_receiver, control = v2_rig
    jwk = jwk_for(emulator, emulator.engine.keys.active.kid)
    # The receiver behaves like the connector: 401 on a bad signature.
    webhook_receiver.responder = lambda r: None if verify_8x8_signature(r.headers, r.body, jwk) else 401
    control.add_fault("bad_signature", "QUEUED", count=1)
    conv_id = new_conversation(v2, channel)
    attempts = webhook_receiver.wait_for_events("QUEUED", count=2, conversation_id=conv_id)
    assert [a.status for a in attempts] == [401, 200]
    assert not verify_8x8_signature(attempts[0].headers, attempts[0].body, jwk)
    assert verify_8x8_signature(attempts[1].headers, attempts[1].body, jwk)
    emulator.wait_for_delivery("QUEUED", conv_id)
    assert [r.bad_signature for r in emulator.deliveries("QUEUED", conv_id)] == [True, False]
