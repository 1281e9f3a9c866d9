"""Webhook signatures (independent verifier), JWK by kid and rotation, OAuth tokens."""

from __future__ import annotations

import time

import requests

from cc_emulator.control import ChatV2Client, ControlClient
from cc_emulator.pytest_plugin import WebhookReceiver, make_test_config
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import V2Rig, jwk_for, new_conversation, signature_kid, verify_8x8_signature
from tests.support.signing import SIGNATURE_HEADERS


def test_every_event_carries_headers_and_a_valid_signature(
    emulator: EmulatorServer, v2: ChatV2Client, channel: str, webhook_receiver: WebhookReceiver
) -> None:
    conv_id = new_conversation(v2, channel)
    v2.post_message(conv_id, "hi")
    webhook_receiver.wait_for_events("TEXT", conversation_id=conv_id)
    jwk = jwk_for(emulator, emulator.engine.keys.active.kid)
    assert jwk["kty"] == "RSA" and jwk["kid"] == emulator.engine.keys.active.kid
    assert len(webhook_receiver.requests) >= 4
    for req in webhook_receiver.requests:
        for name in SIGNATURE_HEADERS:
            assert name in req.headers, name
        assert req.headers["x-8x8-tenant-id"] == "t1"
        assert req.headers["x-8x8-customer-id"] == "c1"
        assert abs(int(req.headers["x-8x8-transmission-time"]) - time.time() * 1000) < 60_000
        assert verify_8x8_signature(req.headers, req.body, jwk)
        # A single changed byte must break it: proves the checksum covers the raw body.
        assert not verify_8x8_signature(req.headers, req.body + b" ", jwk)
    assert len({r.headers["x-8x8-event-id"] for r in webhook_receiver.requests}) == len(webhook_receiver.requests)


def test_key_rotation_serves_old_and_new_kid(v2_rig: V2Rig) -> None:
    emulator, v2, channel, webhook_receiver, control = v2_rig
    old_kid = emulator.engine.keys.active.kid
    new_kid = control.rotate_keys()
    assert new_kid != old_kid
    conv_id = new_conversation(v2, channel)
    queued = webhook_receiver.wait_for_events("QUEUED", conversation_id=conv_id)[0]
    assert signature_kid(queued.headers) == new_kid
    assert verify_8x8_signature(queued.headers, queued.body, jwk_for(emulator, new_kid))
    assert not verify_8x8_signature(queued.headers, queued.body, jwk_for(emulator, old_kid))
    verify_event = webhook_receiver.events("WEB_HOOK_VERIFY")[0]
    assert signature_kid(verify_event.headers) == old_kid
    assert verify_8x8_signature(verify_event.headers, verify_event.body, jwk_for(emulator, old_kid))
    missing = requests.get(emulator.jwk_url("no-such-kid"), timeout=5)
    assert missing.status_code == 404 and missing.json()["resourceId"] == "no-such-kid"


def test_token_requires_basic_credentials_and_grant(emulator: EmulatorServer) -> None:
    form = {"grant_type": "client_credentials"}
    assert requests.post(emulator.token_url, data=form, timeout=5).status_code == 401
    wrong = requests.post(emulator.token_url, auth=("K", "bad"), data=form, timeout=5)
    assert wrong.status_code == 401 and "ErrorCode" in wrong.json()
    ok = requests.post(emulator.token_url, auth=("K", "S"), data=form, timeout=5)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == "3600"


def test_unknown_and_expired_tokens_get_401(emulator: EmulatorServer, control: ControlClient) -> None:
    hooks = f"{emulator.v2_base}/web-hooks"
    unknown = requests.get(hooks, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert unknown.status_code == 401
    assert unknown.json()["fault"]["detail"]["errorcode"] == "keymanagement.service.invalid_access_token"
    v2 = ChatV2Client(emulator.base_url, "t1")
    assert v2.request("GET", "/web-hooks").status_code == 200
    assert control.expire_tokens() == 1
    expired = v2.request("GET", "/web-hooks")
    assert expired.status_code == 401
    assert expired.json()["fault"]["detail"]["errorcode"] == "keymanagement.service.access_token_expired"
    v2.token(force=True)
    assert v2.request("GET", "/web-hooks").status_code == 200


def test_token_lifetime_is_configurable_and_enforced() -> None:
    cfg = make_test_config(token_ttl=1)
    with EmulatorServer(cfg) as emu:
        resp = requests.post(emu.token_url, auth=("K", "S"), data={"grant_type": "client_credentials"}, timeout=5)
        assert resp.json()["expires_in"] == "1"
        headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        assert requests.get(f"{emu.v2_base}/channels", headers=headers, timeout=5).status_code == 200
        deadline = time.monotonic() + 3
        while requests.get(f"{emu.v2_base}/channels", headers=headers, timeout=5).status_code == 200:
            assert time.monotonic() < deadline, "token never expired"
            time.sleep(0.1)
        assert requests.get(f"{emu.v2_base}/channels", headers=headers, timeout=5).status_code == 401
