"""Helpers for the emulator tests: an independent webhook-signature verifier and small conveniences."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, NamedTuple

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from cc_emulator.control import ChatV2Client, ControlClient, GatewayClient
from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer


class V2Rig(NamedTuple):
    """The fixtures most Chat API v2 tests take together (the `v2_rig` fixture)."""

    emulator: EmulatorServer
    v2: ChatV2Client
    channel: str
    webhook_receiver: WebhookReceiver
    control: ControlClient


class GatewayRig(NamedTuple):
    """The fixtures most Chat Gateway v1 tests take together (the `gw_rig` fixture)."""

    emulator: EmulatorServer
    gw: GatewayClient
    gw_channel: str
    webhook_receiver: WebhookReceiver
    control: ControlClient


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


def new_conversation(v2: ChatV2Client, channel_id: str, **kwargs: Any) -> str:
    resp = v2.create_conversation(channel_id, **kwargs)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["conversationId"])


def jwk_for(emulator: EmulatorServer, kid: str) -> dict[str, Any]:
    resp = requests.get(emulator.jwk_url(kid), timeout=5)
    assert resp.status_code == 200
    result: dict[str, Any] = resp.json()
    return result


def new_gateway_conversation(gw: GatewayClient, channel_id: str, **kwargs: Any) -> str:
    resp = gw.create_conversation(channel_id, **kwargs)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["conversationId"])


def gateway_events(receiver: WebhookReceiver, conversation_id: str) -> list[dict[str, Any]]:
    """Distinct events (by event id) for one conversation, in arrival order."""
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    for r in receiver.events(ok_only=True):
        body = r.json()
        if body.get("conversationId") != conversation_id or r.headers["x-8x8-event-id"] in seen:
            continue
        seen.add(r.headers["x-8x8-event-id"])
        found.append(body)
    return found


def summary(event: dict[str, Any]) -> str:
    """A short label: QUEUED:101, MEMBERS_CHANGED:agent-1 joined, MESSAGE:agent, CONVERSATION_UPDATE:idle."""
    data = event.get("data") or {}
    kind = event["eventType"]
    if kind == "QUEUED":
        return f"QUEUED:{data['queueId']}"
    if kind == "MEMBERS_CHANGED":
        return f"MEMBERS_CHANGED:{data['memberType']}:{data['id']} {data['change']}"
    if kind == "MESSAGE":
        return f"MESSAGE:{data['sender']['type']}"
    if kind == "CONVERSATION_UPDATE":
        return f"CONVERSATION_UPDATE:{data['state']}"
    if kind == "ACTIVITY":
        return f"ACTIVITY:{data['name']}:{len(data['value']['users'])}"
    return str(kind)
