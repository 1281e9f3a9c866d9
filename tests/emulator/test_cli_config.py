"""The command line and the example configuration know the Gateway settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_emulator.__main__ import build_parser, config_from_args
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
