"""Fixtures for the emulator tests, plus an independent webhook-signature verifier."""

from __future__ import annotations

import base64
import json
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

# Until pytest's pythonpath includes emulator/, make the package importable from here.
_EMULATOR_DIR = str(Path(__file__).resolve().parents[2] / "emulator")
if _EMULATOR_DIR not in sys.path:
    sys.path.insert(0, _EMULATOR_DIR)

from cc_emulator import pytest_plugin as _plugin  # noqa: E402
from cc_emulator.control import ChatV2Client, ControlClient  # noqa: E402
from cc_emulator.pytest_plugin import ReceivedRequest, WebhookReceiver  # noqa: E402
from cc_emulator.server import EmulatorServer  # noqa: E402

# The plugin's fixtures, made visible to the tests under this directory.
emulator_config = _plugin.emulator_config
emulator = _plugin.emulator
webhook_receiver = _plugin.webhook_receiver


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_8x8_signature(headers: dict[str, str], body: bytes, jwk: dict[str, Any]) -> bool:
    """Written from 8x8's published description, independent of the emulator's signing code."""
    h = {k.lower(): v for k, v in headers.items()}
    protected_b64, middle, sig_b64 = h["x-8x8-signature"].split(".")
    assert middle == "", "payload must be detached"
    header = json.loads(_b64d(protected_b64))
    assert header == {"b64": False, "crit": ["b64"], "kid": header["kid"], "alg": "RS256"}
    assert list(header) == ["b64", "crit", "kid", "alg"]
    payload = (
        '{"checksum":%d,"cid":"%s","eid":"%s","retry":%d,"tid":"%s","tt":%d}'  # noqa: UP031 - exact layout
        % (
            zlib.crc32(body) & 0xFFFFFFFF,
            h["x-8x8-customer-id"],
            h["x-8x8-event-id"],
            int(h["x-8x8-retry"]),
            h["x-8x8-tenant-id"],
            int(h["x-8x8-transmission-time"]),
        )
    ).encode()
    n = int.from_bytes(_b64d(jwk["n"]), "big")
    e = int.from_bytes(_b64d(jwk["e"]), "big")
    key = RSAPublicNumbers(e, n).public_key()
    try:
        key.verify(_b64d(sig_b64), protected_b64.encode() + b"." + payload, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def signature_kid(headers: dict[str, str]) -> str:
    protected = headers["x-8x8-signature"].split(".")[0]
    return str(json.loads(_b64d(protected))["kid"])


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


def new_conversation(v2: ChatV2Client, channel_id: str, **kwargs: Any) -> str:
    resp = v2.create_conversation(channel_id, **kwargs)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["conversationId"])


def jwk_for(emulator: EmulatorServer, kid: str) -> dict[str, Any]:
    resp = requests.get(emulator.jwk_url(kid), timeout=5)
    assert resp.status_code == 200
    result: dict[str, Any] = resp.json()
    return result


__all__ = ["ReceivedRequest", "jwk_for", "new_conversation", "signature_kid", "verify_8x8_signature"]
