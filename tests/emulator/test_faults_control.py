"""API faults on demand, the control API, provisioning and the CLI."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from cc_emulator.__main__ import parse_fault
from cc_emulator.config import load_config
from cc_emulator.control import ChatV2Client, ControlClient
from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import new_conversation

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_status_fault_for_next_n_calls(emulator: EmulatorServer, v2: ChatV2Client, channel: str, status: int) -> None:
    conv_id = new_conversation(v2, channel)
    emulator.add_fault("status", "post_message", count=2, status=status, retry_after=7)
    first = v2.post_message(conv_id, "a")
    assert first.status_code == status
    assert "message" in first.json()
    if status in (429, 503):
        assert first.headers["Retry-After"] == "7"
    assert v2.post_message(conv_id, "b").status_code == status
    assert v2.post_message(conv_id, "c").status_code == 202
    # Faulted calls were not processed; other operations were untouched.
    assert [m.text for m in emulator.engine.messages(conv_id) if m.author_type == "user"] == ["c"]
    assert v2.request("GET", f"/conversations/{conv_id}").status_code == 200


def test_fault_until_cleared_and_request_log(v2: ChatV2Client, control: ControlClient) -> None:
    control.add_fault("status", "get_conversation", status=500)
    for _ in range(3):
        assert v2.request("GET", "/conversations/x").status_code == 500
    assert control.faults()[0]["fired"] == 3
    control.clear_faults()
    assert v2.request("GET", "/conversations/x").status_code == 404
    assert control.request_count("get_conversation") == 4
    log = control.requests("get_conversation")["requests"]
    assert [r["fault"] for r in log] == ["status", "status", "status", None]
    assert [r["status"] for r in log] == [500, 500, 500, 404]


def test_token_fault_and_expire(emulator: EmulatorServer) -> None:
    emulator.add_fault("status", "token", count=1, status=503)
    form = {"grant_type": "client_credentials"}
    assert requests.post(emulator.token_url, auth=("K", "S"), data=form, timeout=5).status_code == 503
    assert requests.post(emulator.token_url, auth=("K", "S"), data=form, timeout=5).status_code == 200


def test_latency_fault(emulator: EmulatorServer, v2: ChatV2Client) -> None:
    v2.token()
    emulator.add_fault("latency", "list_channels", count=1, seconds=0.3)
    started = time.monotonic()
    assert v2.request("GET", "/channels").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    v2.request("GET", "/channels")
    assert time.monotonic() - started < 0.25


def test_hang_fault_times_out_client_without_processing(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str
) -> None:
    conv_id = new_conversation(v2, channel)
    emulator.add_fault("hang", "post_message", count=1, seconds=5)
    with pytest.raises(requests.Timeout):
        v2.request("POST", f"/conversations/{conv_id}/messages", json={"text": "lost"}, timeout=0.3)
    assert emulator.engine.messages(conv_id) == []


def test_reset_fault(emulator: EmulatorServer, v2: ChatV2Client, channel: str) -> None:
    conv_id = new_conversation(v2, channel)
    emulator.add_fault("reset", "post_message", count=1)
    with pytest.raises(requests.ConnectionError):
        v2.post_message(conv_id, "x")
    assert emulator.engine.messages(conv_id) == []
    assert v2.post_message(conv_id, "y").status_code == 202


def test_accept_then_fail_stores_message_but_answers_500(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str
) -> None:
    conv_id = new_conversation(v2, channel)
    emulator.add_fault("accept_then_fail", "post_message", count=1, status=500)
    assert v2.post_message(conv_id, "ambiguous").status_code == 500
    assert [m.text for m in emulator.engine.messages(conv_id) if m.author_type == "user"] == ["ambiguous"]


def test_accept_then_drop_stores_message_but_closes_connection(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str
) -> None:
    conv_id = new_conversation(v2, channel)
    emulator.add_fault("accept_then_drop", "create_conversation", count=1)
    with pytest.raises(requests.ConnectionError):
        v2.create_conversation(channel)
    assert len(emulator.engine.conversations) == 2
    assert conv_id in emulator.engine.conversations


def test_raw_reset_is_a_connection_reset(emulator: EmulatorServer) -> None:
    emulator.add_fault("reset", "jwk", count=1)
    conn = http.client.HTTPConnection("127.0.0.1", int(emulator.base_url.rsplit(":", 1)[1]), timeout=5)
    conn.request("GET", "/vcc/us/chat/v2/jwk/x/public")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        conn.getresponse()


def test_control_provision_state_and_reset(control: ControlClient, webhook_receiver: WebhookReceiver) -> None:
    webhook_id, channel_id = control.provision(webhook_receiver.url, "102")
    webhook_receiver.wait_for_events("WEB_HOOK_VERIFY")
    state = control.state()
    assert state["channels"] == [
        {"id": channel_id, "name": "casebridge-channel", "webhook_id": webhook_id, "queue_id": "102"}
    ]
    assert state["activeKid"] in state["kids"]
    control.add_agent("a3", ["102"], mode="manual")
    assert any(a["id"] == "a3" for a in control.state()["agents"])
    control.reset()
    state = control.state()
    assert state["channels"] == [] and state["webhooks"] == []
    assert control.deliveries() == []


def test_parse_cli_fault_specs() -> None:
    spec = parse_fault("status:post_message:3:503")
    assert (spec.kind, spec.op, spec.count, spec.status) == ("status", "post_message", 3, 503)
    spec = parse_fault("latency:*::0.5")
    assert (spec.op, spec.count, spec.seconds) == ("*", None, 0.5)
    assert parse_fault("hang:token").seconds == 30.0


def test_config_file_faults_apply(tmp_path: Path) -> None:

    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(
        "port: 0\nqueues: [{id: '7', name: Seven}]\nagents: [{id: x, name: X, queues: ['7'], mode: manual}]\n"
        "faults: [{kind: status, op: token, count: 1, status: 500}]\n"
    )
    cfg = load_config(cfg_file)
    with EmulatorServer(cfg) as emu:
        form = {"grant_type": "client_credentials"}
        assert requests.post(emu.token_url, auth=("K", "S"), data=form, timeout=5).status_code == 500
        assert requests.post(emu.token_url, auth=("K", "S"), data=form, timeout=5).status_code == 200
        assert list(emu.engine.queues) == ["7"]


def test_example_config_loads() -> None:

    cfg = load_config(REPO / "emulator" / "example-config.yaml")
    assert cfg.queues and cfg.agents
    assert {q for a in cfg.agents for q in a.queues} <= {q.id for q in cfg.queues}


def test_cli_starts_prints_base_url_and_stops() -> None:
    env = {"PYTHONPATH": str(REPO / "emulator"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cc_emulator",
            "--port",
            "0",
            "--tenant",
            "t9",
            "--api-key",
            "A",
            "--api-secret",
            "B",
            "--config",
            str(REPO / "emulator" / "example-config.yaml"),
            "--fault",
            "status:token:1:503",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        base = line.strip().rsplit(" ", 1)[1]
        form = {"grant_type": "client_credentials"}
        assert requests.post(f"{base}/oauth/v2/token", auth=("A", "B"), data=form, timeout=5).status_code == 503
        assert requests.post(f"{base}/oauth/v2/token", auth=("A", "B"), data=form, timeout=5).status_code == 200
        assert ControlClient(base).state()["tenantId"] == "t9"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
