"""Fixtures for the emulator tests, plus an independent webhook-signature verifier."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Until pytest's pythonpath includes emulator/, make the package importable from here.
_EMULATOR_DIR = str(Path(__file__).resolve().parents[2] / "emulator")
if _EMULATOR_DIR not in sys.path:
    sys.path.insert(0, _EMULATOR_DIR)

from cc_emulator import pytest_plugin as _plugin  # noqa: E402
from cc_emulator.control import ChatV2Client, ControlClient, GatewayClient  # noqa: E402
from cc_emulator.pytest_plugin import WebhookReceiver  # noqa: E402
from cc_emulator.server import EmulatorServer  # noqa: E402
from tests.emulator.emulator_support import GatewayRig, V2Rig  # noqa: E402

# The plugin's fixtures, made visible to the tests under this directory.
emulator_config = _plugin.emulator_config
emulator = _plugin.emulator
webhook_receiver = _plugin.webhook_receiver


@pytest.fixture
def v2(emulator: EmulatorServer) -> ChatV2Client:
    return ChatV2Client(emulator.base_url, emulator.config.tenant_id, emulator.config.region)


@pytest.fixture
def control(emulator: EmulatorServer) -> ControlClient:
    return ControlClient(emulator.base_url)


@pytest.fixture
def channel(emulator: EmulatorServer, webhook_receiver: WebhookReceiver) -> Iterator[str]:
    """A channel on queue 101 whose webhook is the receiver; WEB_HOOK_VERIFY already delivered."""
    _, channel_id = emulator.provision(webhook_receiver.url, "101")
    webhook_receiver.wait_for_events("WEB_HOOK_VERIFY")
    yield channel_id


@pytest.fixture
def gw(emulator: EmulatorServer) -> GatewayClient:
    return GatewayClient(emulator.base_url, emulator.config.tenant_id, emulator.config.api_key)


@pytest.fixture
def gw_channel(emulator: EmulatorServer, webhook_receiver: WebhookReceiver) -> Iterator[str]:
    """A channel on queue 101 whose webhook (version "Chat Gateway v1.0") is the receiver."""
    _, channel_id = emulator.provision(webhook_receiver.url, "101", version="chat-gateway-v1")
    webhook_receiver.wait_for_events("WEB_HOOK_VERIFY")
    yield channel_id


@pytest.fixture
def v2_rig(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver, control: ControlClient
) -> V2Rig:
    return V2Rig(emulator, v2, channel, webhook_receiver, control)


@pytest.fixture
def gw_rig(
    emulator: EmulatorServer,
    gw: GatewayClient,
    gw_channel: str,
    webhook_receiver: WebhookReceiver,
    control: ControlClient,
) -> GatewayRig:
    return GatewayRig(emulator, gw, gw_channel, webhook_receiver, control)
