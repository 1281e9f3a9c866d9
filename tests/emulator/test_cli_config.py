"""The command line and the example configuration know the Gateway settings."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cc_emulator.__main__ import build_parser, config_from_args, main
from cc_emulator.config import config_from_dict, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "emulator" / "example-config.yaml"


def test_cli_flags_set_gateway_settings() -> None:
    args = build_parser().parse_args(
        [
            "--gateway-reopen",
            "needs_assignment",
            "--gateway-echo-is-echo",
            "--no-gateway-removed-accepts-messages",
            "--agent-wrap-up-idle",
            "0",
            "--provision",
            "http://127.0.0.1:9/hook",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.gateway_reopen == "needs_assignment"
    assert cfg.gateway_echo_is_echo is True
    assert cfg.gateway_removed_accepts_messages is False
    assert cfg.timings.agent_wrap_up_idle == 0
    assert args.provision_api == "chat-gateway-v1"
    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.gateway_reopen, defaults.gateway_echo_is_echo, defaults.gateway_removed_accepts_messages) == (
        "requeue",
        False,
        True,
    )


def test_example_config_loads_with_rich_script() -> None:
    cfg = load_config(EXAMPLE)
    alice = cfg.agents[0].script
    assert alice.typing and alice.cards and alice.attachment_specs()[0][0] == "steps.txt"


def test_unknown_reopen_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="gateway_reopen"):
        config_from_dict({"gateway_reopen": "sometimes"})


def test_cli_flags_and_example_config_set_the_hand_off_settings() -> None:
    args = build_parser().parse_args(
        [
            *("--queue-status", "102=closed", "--customer-idle", "45", "--metrics-api-key", "MK"),
            *("--metrics-refresh", "1", "--metrics-single-queue-shape", "object", "--wrap-up-code-on-webhook"),
            "--gateway-read-receipts",
        ]
    )
    cfg = config_from_args(args)
    assert [q.status for q in cfg.queues] == ["open", "closed"]
    assert (cfg.timings.customer_idle, cfg.timings.metrics_refresh, cfg.metrics_api_key) == (45, 1, "MK")
    assert cfg.metrics_single_queue_shape == "object"
    assert cfg.wrap_up_code_on_webhook and cfg.gateway_read_receipts
    with pytest.raises(SystemExit, match="QUEUE=open"):
        config_from_args(build_parser().parse_args(["--queue-status", "102=shut"]))
    example = load_config(EXAMPLE)
    assert [c.name for c in example.wrap_up_codes] == ["Resolved", "Refund issued", "Follow-up needed"]
    assert example.wrap_up_codes[1].queues == ["102"]
    with pytest.raises(ValueError, match="status"):
        config_from_dict({"queues": [{"id": "1", "name": "x", "status": "asleep"}]})


def test_a_busy_port_is_named_with_the_option_that_changes_it(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["--host", "127.0.0.1", "--port", str(port)]) == 1
    said = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in said
    assert "--port PORT (0 = any free port)" in said
