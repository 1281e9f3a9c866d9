"""Chat Gateway v1 surface: auth and tenant checks, attachments, typing, signatures, filters and paging."""

from __future__ import annotations

import base64
from typing import Any

import requests

from cc_emulator.config import ScriptConfig
from cc_emulator.control import ControlClient, GatewayClient
from cc_emulator.pytest_plugin import WebhookReceiver, make_test_config
from cc_emulator.server import EmulatorServer
from tests.emulator.emulator_support import (
    GatewayRig,
    gateway_events,
    new_gateway_conversation,
    signature_kid,
    verify_8x8_signature,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _messages(receiver: WebhookReceiver, conv_id: str, sender_type: str, count: int) -> list[dict[str, Any]]:
    def enough(_: Any) -> list[dict[str, Any]] | None:
        found = [
            e["data"]
            for e in gateway_events(receiver, conv_id)
            if e["eventType"] == "MESSAGE" and e["data"]["sender"]["type"] == sender_type
        ]
        return found if len(found) >= count else None

    result: list[dict[str, Any]] = receiver.wait_for(enough)
    return result


def test_api_key_and_tenant_checks(emulator: EmulatorServer, gw: GatewayClient) -> None:
    url = f"{emulator.gateway_base}/webhooks"
    for headers in ({}, {"x-api-key": "wrong"}):
        resp = requests.get(url, headers=headers, timeout=5)
        assert resp.status_code == 401
        assert resp.headers["Content-Type"] == "application/problem+json"
        body = resp.json()
        assert body["message"] == "Access Denied" and body["errors"][0]["code"] == "access_denied"
        assert isinstance(body["referenceId"], str)
    # X-8x8-Tenant is optional; when sent it must match.
    assert requests.get(url, headers={"x-api-key": "K"}, timeout=5).status_code == 200
    assert gw.request("GET", "/webhooks").status_code == 200
    wrong = gw.request("GET", "/webhooks", headers={"X-8x8-Tenant": "other"})
    assert wrong.status_code == 403
    assert wrong.json()["errors"] == ["Header X-8x8-Tenant doesn't match tenant information for customerId=c1"]
    # Channel creation declares its 403 as GenericExceptionPayload.
    chan = gw.request("POST", "/channels", json={}, headers={"X-8x8-Tenant": "other"})
    assert chan.status_code == 403 and chan.json()["errors"][0]["code"] == "forbidden"
    # The JWK needs no key.
    kid = emulator.engine.keys.active.kid
    assert requests.get(emulator.gateway_jwk_url(kid), timeout=5).json()["kid"] == kid
    # Unknown Gateway paths answer a problem document.
    assert gw.request("GET", "/nope").status_code == 404


def test_every_gateway_event_is_signed_and_verifies_with_the_gateway_jwk(
    emulator: EmulatorServer, gw: GatewayClient, gw_channel: str, webhook_receiver: WebhookReceiver
) -> None:
    conv_id = new_gateway_conversation(gw, gw_channel)
    gw.post_message(conv_id, "hi")
    _messages(webhook_receiver, conv_id, "agent", 1)
    emulator.engine.keys.rotate()
    gw.post_message(conv_id, "after rotation")
    _messages(webhook_receiver, conv_id, "agent", 2)
    kids = set()
    for req in webhook_receiver.requests:
        kid = signature_kid(req.headers)
        kids.add(kid)
        jwk = requests.get(emulator.gateway_jwk_url(kid), timeout=5).json()
        assert verify_8x8_signature(req.headers, req.body, jwk)
        assert not verify_8x8_signature(req.headers, req.body + b" ", jwk)
    assert len(kids) == 2


def test_attachments_upload_list_content_and_presigned_urls(gw_rig: GatewayRig) -> None:
    emulator, gw, gw_channel, webhook_receiver, control = gw_rig
    conv_id = new_gateway_conversation(gw, gw_channel)
    up = gw.upload_attachment(conv_id, "shot.png", PNG, "image/png")
    assert up.status_code == 200 and up.headers["Content-Type"] == "application/hal+json"
    meta = up.json()
    assert set(meta) == {"id", "filename", "sizeInBytes", "createdAt"}
    assert meta["filename"] == "shot.png" and meta["sizeInBytes"] == len(PNG)
    att_id = meta["id"]
    listed = gw.request("GET", f"/conversations/{conv_id}/attachments").json()
    assert [a["id"] for a in listed["_embedded"]["attachments"]] == [att_id]
    assert gw.request("GET", f"/conversations/{conv_id}/attachments/{att_id}").json() == meta
    content = gw.request("GET", f"/conversations/{conv_id}/attachments/{att_id}/content")
    assert content.content == PNG
    assert content.headers["Content-Type"] == "application/octet-stream"
    assert content.headers["Content-Disposition"] == 'attachment; filename="shot.png"'
    assert gw.request("GET", f"/conversations/{conv_id}/attachments/nope").status_code == 404
    missing = gw.request("POST", f"/conversations/{conv_id}/attachments", files={"authorType": (None, "user")})
    assert missing.status_code == 400

    # The user's message with the attachment echoes back with a pre-signed URL.
    assert gw.post_message(conv_id, "see this", attachments=[{"id": att_id}]).status_code == 202
    echo = _messages(webhook_receiver, conv_id, "user", 1)[0]
    assert echo["attachments"][0]["id"] == att_id
    assert echo["attachments"][0]["type"] == "image" and echo["attachments"][0]["fileName"] == "shot.png"
    assert requests.get(echo["attachments"][0]["preSignedUrl"], timeout=5).content == PNG
    bad_ref = gw.post_message(conv_id, "x", attachments=[{"id": "unknown"}])
    assert bad_ref.status_code == 400 and isinstance(bad_ref.json()["errors"], dict)

    # An agent sends a file and a card through the control API.
    emulator.wait_quiet()
    card = {"contentType": "application/8x8.quick.replies", "content": {"options": [{"title": "Yes"}]}}
    pdf = b"%PDF-1.4 fake"
    control.agent_reply(
        "agent-1",
        "here is your invoice",
        attachments=[
            {"name": "invoice.pdf", "contentType": "application/pdf", "content": base64.b64encode(pdf).decode()}
        ],
        cards=[card],
    )
    agent_msgs = _messages(webhook_receiver, conv_id, "agent", 2)
    sent = next(m for m in agent_msgs if m["text"] == "here is your invoice")
    assert sent["cards"] == [card]
    file_ref = sent["attachments"][0]
    assert file_ref["type"] == "file" and file_ref["fileName"] == "invoice.pdf"
    fetched = requests.get(file_ref["preSignedUrl"], timeout=5)
    assert fetched.content == pdf and fetched.headers["Content-Type"] == "application/pdf"
    # A tampered or expired URL is refused.
    assert requests.get(file_ref["preSignedUrl"].replace("signature=", "signature=x"), timeout=5).status_code == 403
    control.update_settings(attachmentUrlTtl=-1)
    att = next(iter(emulator.engine.get_conversation(conv_id).attachments.values()))
    assert requests.get(emulator.engine.presigned_url(att), timeout=5).status_code == 403
    # Messages list shows the references.
    msgs = gw.request("GET", f"/conversations/{conv_id}/messages", params={"sort": "createdAt:asc"}).json()
    with_files = [m for m in msgs["_embedded"]["messages"] if m.get("attachments")]
    assert [m["author"]["type"] for m in with_files] == ["user", "agent"]


def test_scripted_agent_sends_attachments_cards_and_typing(webhook_receiver: WebhookReceiver) -> None:
    cfg = make_test_config()
    card = {"contentType": "application/vnd.microsoft.card.adaptive", "content": {"type": "AdaptiveCard"}}
    cfg.agents[0].script = ScriptConfig(
        reply_text="see attached",
        attachments=[{"name": "notes.txt", "contentType": "text/plain", "text": "hello"}],
        cards=[card],
        typing=True,
    )
    with EmulatorServer(cfg) as emu:
        gw = GatewayClient(emu.base_url)
        _, channel_id = emu.provision(webhook_receiver.url, "101", version="chat-gateway-v1")
        conv_id = new_gateway_conversation(gw, channel_id)
        gw.post_message(conv_id, "question")
        reply = _messages(webhook_receiver, conv_id, "agent", 1)[0]
        assert reply["cards"] == [card]
        assert requests.get(reply["attachments"][0]["preSignedUrl"], timeout=5).content == b"hello"
        kinds = [
            (e["eventType"], len(e["data"]["value"]["users"]) if e["eventType"] == "ACTIVITY" else None)
            for e in gateway_events(webhook_receiver, conv_id)
            if e["eventType"] in ("ACTIVITY", "MESSAGE")
        ]
        assert kinds == [("MESSAGE", None), ("ACTIVITY", 1), ("ACTIVITY", 0), ("MESSAGE", None)]


def test_agent_typing_activity_and_user_typing_endpoint(gw_rig: GatewayRig) -> None:
    emulator, gw, gw_channel, webhook_receiver, control = gw_rig
    conv_id = new_gateway_conversation(gw, gw_channel)
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv_id)
    control.agent_typing("agent-1", True)
    control.agent_typing("agent-1", False)
    activities = webhook_receiver.wait_for_events("ACTIVITY", count=2, conversation_id=conv_id)
    assert activities[0].json()["data"] == {"name": "typing", "value": {"users": [{"id": "agent-1", "type": "agent"}]}}
    assert activities[1].json()["data"] == {"name": "typing", "value": {"users": []}}

    assert gw.request("POST", f"/conversations/{conv_id}/typing", json={"authorType": "user"}).status_code == 204
    assert emulator.engine.transcript(conv_id)["userTyping"][0]["authorType"] == "user"
    bad = gw.request("POST", f"/conversations/{conv_id}/typing", json={"authorType": "agent"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "invalid_parameter"
    gone = gw.request("POST", "/conversations/nope/typing", json={"authorType": "user"})
    assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == "resource_not_found"


def test_typing_is_not_sent_to_v2_webhooks(
    emulator: EmulatorServer, gw: GatewayClient, channel: str, webhook_receiver: WebhookReceiver
) -> None:
    conv_id = new_gateway_conversation(gw, channel)
    emulator.wait_for_delivery("AGENT_JOINED", conv_id)
    emulator.engine.agent_typing("agent-1", True)
    emulator.wait_quiet()
    assert webhook_receiver.event_types(conv_id) == ["QUEUED", "AGENT_JOINED"]


def test_list_conversations_filter_and_paging(gw: GatewayClient, gw_channel: str) -> None:
    ids = [
        new_gateway_conversation(gw, gw_channel, user={"name": f"n{i}", "caseId": f"case-{i % 2}"}) for i in range(5)
    ]
    found = gw.request("GET", "/conversations", params={"filter": "user.caseId==case-1"}).json()
    assert {c["id"] for c in found["_embedded"]["conversations"]} == {ids[1], ids[3]}
    assert found["page"] == {"size": 20, "number": 0, "totalElements": 2, "totalPages": 1}
    either = gw.request("GET", "/conversations", params={"filter": "user.name==n0,user.name==n4"}).json()
    assert {c["id"] for c in either["_embedded"]["conversations"]} == {ids[0], ids[4]}
    both = gw.request("GET", "/conversations", params={"filter": "user.caseId==case-0;user.name==n2"}).json()
    assert [c["id"] for c in both["_embedded"]["conversations"]] == [ids[2]]
    page = gw.request("GET", "/conversations", params={"size": 2, "page": 2, "sort": "createdAt:asc"}).json()
    assert [c["id"] for c in page["_embedded"]["conversations"]] == [ids[4]]
    assert page["page"]["totalPages"] == 3 and page["_links"]["self"]["href"].startswith("/chat-gateway/v1/")
    assert gw.request("GET", "/conversations", params={"filter": "garbage"}).status_code == 400


def test_control_settings_validation(control: ControlClient) -> None:
    before = control.settings()
    assert before["gatewayReopen"] == "requeue" and before["gatewayEchoIsEcho"] is False
    resp = requests.post(control.base + "/settings", json={"gatewayReopen": "sometimes"}, timeout=5)
    assert resp.status_code == 400
    resp = requests.post(control.base + "/settings", json={"nope": 1}, timeout=5)
    assert resp.status_code == 400
    assert control.update_settings(agentWrapUpIdle=0)["agentWrapUpIdle"] == 0
