"""Every Chat Gateway v1 request and response the emulator exchanges validates against 8x8's OpenAPI file.

Defects of the file are tolerated only by name: each entry of TOLERATED is a trap id of GATEWAY.md
section 6 with a one-line reason and the exact findings it covers. Every other finding fails the test,
and so does an entry that no longer matches anything (the file or the emulator changed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from openapi_schema_validator import oas30_format_checker

from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer
from tests.support.openapi import ExchangeRecorder, Finding, load_spec

P = "/chat-gateway/v1"


@dataclass(frozen=True)
class Trap:
    reason: str
    covers: Callable[[Finding], bool]


def _ops(*ops: str) -> Callable[[Finding], bool]:
    return lambda f: f.op in ops


TOLERATED: dict[str, Trap] = {
    "T1": Trap(
        "webhook create/replace require `notificationVersion` but define only `version`",
        lambda f: (
            _ops("createwebhook-1", "updatewebhook-1")(f)
            and f.where == "request"
            and f.message == "'notificationVersion' is a required property"
        ),
    ),
    "T10": Trap(
        "the JWK 200 body is declared `type: string`; its example and 8x8's service answer a JWK object",
        lambda f: (
            f.op == "getjwkpublickey-1" and f.where == "response 200" and f.message.endswith("is not of type 'string'")
        ),
    ),
    "T11": Trap(
        "AttachmentResult requires `size` and `type`, which it does not define (it defines `sizeInBytes`)",
        lambda f: (
            _ops("addconversationattachments", "getconversationattachment", "getconversationattachments")(f)
            and f.message in ("'size' is a required property", "'type' is a required property")
        ),
    ),
    "T12": Trap(
        "list results require `data`/`messages`/`cards` while the items sit under `_embedded`",
        lambda f: (
            (
                _ops("getconversationattachments", "getparticipantsforcctransaction-1")(f)
                and f.message == "'data' is a required property"
            )
            or (f.op == "getmessagesforcctransaction-1" and f.message == "'messages' is a required property")
            or (f.op == "getcardsforcctransaction" and f.message == "'cards' is a required property")
        ),
    ),
    "X1": Trap(
        "InteractionInfo startTime/endTime are declared `format: date`; the example and the values are date-times",
        lambda f: f.op == "getccinteractions" and bool(re.fullmatch(r"'[^']+' is not a 'date'", f.message)),
    ),
}
# Not emulated: the card-action paths under /api/v1/tenant/... look internal (trap T20).
NOT_EMULATED = {
    "/api/v1/tenant/{tenantId}/conversations/{conversationId}/cards/{cardId}/action-submit",
    "/api/v1/tenant/{tenantId}/conversations/{conversationId}/cards/{cardId}/action-execute",
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec("chat-gateway-v1.openapi.yml", "Chat Gateway v1")


class Recorder(ExchangeRecorder):
    """Sends Gateway requests and keeps (path template, method, request body, response) for validation."""

    def __init__(self, emu: EmulatorServer, spec: dict[str, Any]) -> None:
        super().__init__(spec, format_checker=oas30_format_checker)
        self.emu = emu
        self.headers = {"x-api-key": emu.config.api_key, "X-8x8-Tenant": emu.config.tenant_id}

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        valid: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """`valid=False` marks a deliberately invalid request: only its response is checked."""
        sent_headers = self.headers if headers is None else headers
        resp = requests.request(method, self.emu.base_url + path, json=body, headers=sent_headers, timeout=5, **kwargs)
        record = body
        if "files" in kwargs:
            # Multipart: validate the form's fields (the file part as a string).
            record = {k: (v[1] if isinstance(v[1], str) else "<binary>") for k, v in kwargs["files"].items()}
        return self.record(method, path, record if valid else None, resp)


def test_all_gateway_operations_conform_to_openapi(
    spec: dict[str, Any], emulator: EmulatorServer, webhook_receiver: WebhookReceiver
) -> None:
    rec = Recorder(emulator, spec)
    assert rec.call("GET", f"{P}/webhooks", headers={}).status_code == 401
    assert rec.call("GET", f"{P}/webhooks", headers={**rec.headers, "x-api-key": "bad"}).status_code == 401
    assert rec.call("GET", f"{P}/webhooks", headers={**rec.headers, "X-8x8-Tenant": "other"}).status_code == 403

    # Webhooks. Create with `version` only (T1), replace with both keys.
    hook = rec.call(
        "POST", f"{P}/webhooks", {"name": "hook", "uri": webhook_receiver.url, "version": "Chat Gateway v1.0"}
    )
    assert hook.status_code == 200 and hook.json()["version"] == "Chat Gateway v1.0"
    hook_id = hook.json()["id"]
    assert rec.call("POST", f"{P}/webhooks", {"name": "x"}, valid=False).status_code == 400
    assert rec.call("GET", f"{P}/webhooks", params={"page": 0, "size": 10}).json()["page"]["totalElements"] == 1
    assert rec.call("GET", f"{P}/webhooks/{hook_id}").status_code == 200
    assert rec.call("GET", f"{P}/webhooks/999").status_code == 404
    both = {
        "name": "renamed",
        "uri": webhook_receiver.url,
        "version": "Chat Gateway v1.0",
        "notificationVersion": "Chat Gateway v1.0",
    }
    assert rec.call("PUT", f"{P}/webhooks/{hook_id}", both).json()["name"] == "renamed"
    assert rec.call("PUT", f"{P}/webhooks/999", both).status_code == 404
    verify = {"version": "Chat Gateway v1.0", "uri": webhook_receiver.url}
    assert rec.call("POST", f"{P}/webhooks/verify", verify).status_code == 204
    assert rec.call("POST", f"{P}/webhooks/verify", {"uri": webhook_receiver.url}, valid=False).status_code == 400

    # Channels.
    ch_body = {
        "name": "chan",
        "type": "ChatAPI",
        "webHookId": hook_id,
        "routingOptions": {"type": "queue", "id": "101"},
    }
    ch = rec.call("POST", f"{P}/channels", ch_body)
    assert ch.status_code == 200
    ch_id = ch.json()["id"]
    bad = {**ch_body, "routingOptions": {"type": "queue", "id": "nope"}}
    assert rec.call("POST", f"{P}/channels", bad, valid=False).status_code == 400
    assert rec.call("POST", f"{P}/channels", ch_body, headers={**rec.headers, "X-8x8-Tenant": "x"}).status_code == 403
    assert rec.call("GET", f"{P}/channels").json()["_embedded"]["channels"][0]["id"] == ch_id
    assert rec.call("GET", f"{P}/channels/{ch_id}").status_code == 200
    assert rec.call("GET", f"{P}/channels/404").status_code == 404
    assert rec.call("PUT", f"{P}/channels/{ch_id}", {**ch_body, "name": "chan2"}).status_code == 200
    assert rec.call("PUT", f"{P}/channels/{ch_id}", {"name": "x"}, valid=False).status_code == 400

    # Conversations.
    user = {
        "name": "Jane",
        "userId": "cust-1",
        "email": "jane@example.com",
        "phone": "+15550100",
        "company": "Acme",
        "caseId": "500x",
        "language": "en",
        "additionalProperties": [{"key": "plan", "value": "gold"}],
    }
    conv_body = {
        "channelId": ch_id,
        "user": user,
        "assignment": {"type": "queue", "id": "101"},
        "history": {"messages": [{"authorType": "user", "text": "hi"}, {"authorType": "bot", "text": "wait"}]},
    }
    conv = rec.call("POST", f"{P}/conversations", conv_body)
    assert conv.status_code == 202
    conv_id = conv.json()["conversationId"]
    c = f"{P}/conversations/{conv_id}"
    too_many = {
        "channelId": ch_id,
        "user": {"additionalProperties": [{"key": f"k{i}", "value": "v"} for i in range(31)]},
    }
    assert rec.call("POST", f"{P}/conversations", too_many, valid=False).status_code == 400
    assert rec.call("POST", f"{P}/conversations", {"channelId": "nope", "user": {}}).status_code == 400
    emulator.wait_for_delivery("MEMBERS_CHANGED", conv_id)
    assert rec.call("POST", f"{c}/messages", {"authorType": "user", "text": "more"}).status_code == 202
    assert rec.call("POST", f"{c}/messages", {"authorType": "agent", "text": "x"}, valid=False).status_code == 400
    assert rec.call("POST", f"{P}/conversations/nope/messages", {"authorType": "user", "text": "x"}).status_code == 404
    up = rec.call(
        "POST",
        f"{c}/attachments",
        files={"attachment": ("a.txt", b"hello", "text/plain"), "authorType": (None, "user")},
    )
    assert up.status_code == 200
    att_id = up.json()["id"]
    card = {
        "contentType": "application/8x8.quick.replies",
        "content": {"options": [{"title": "one", "data": {"postback": "1"}}]},
    }
    with_all = {"authorType": "bot", "text": "pick", "attachments": [{"id": att_id}], "cards": [card]}
    assert rec.call("POST", f"{c}/messages", with_all).status_code == 202
    emulator.wait_quiet()
    assert rec.call("GET", f"{P}/conversations", params={"filter": "user.caseId==500x"}).status_code == 200
    assert rec.call("GET", f"{P}/conversations", params={"filter": "(("}, valid=False).status_code == 400
    assert rec.call("GET", c).json()["state"] == "active"
    assert rec.call("GET", f"{P}/conversations/nope").status_code == 404
    put = {"channelId": ch_id, "user": user, "assignment": {"type": "queue", "id": "101"}}
    assert rec.call("PUT", c, put).status_code == 202
    assert rec.call("PUT", f"{P}/conversations/nope", put).status_code == 404
    assert rec.call("PATCH", c, {"user": {**user, "phone": "+15550111"}}).status_code == 202
    assert rec.call("PATCH", f"{P}/conversations/nope", {"user": user}).status_code == 404
    msgs = rec.call("GET", f"{c}/messages").json()["_embedded"]["messages"]
    with_card = next(m for m in msgs if m.get("cards"))
    assert rec.call("GET", f"{c}/messages/{with_card['id']}").status_code == 200
    assert rec.call("GET", f"{c}/messages/nope").status_code == 404
    assert rec.call("GET", f"{c}/messages/{with_card['id']}/cards").status_code == 200
    assert rec.call("GET", f"{P}/conversations/nope/messages").status_code == 404
    assert rec.call("GET", f"{c}/participants").status_code == 200
    assert rec.call("GET", f"{c}/attachments").status_code == 200
    assert rec.call("GET", f"{c}/attachments/{att_id}").status_code == 200
    assert rec.call("GET", f"{c}/attachments/nope").status_code == 404
    assert rec.call("GET", f"{c}/attachments/{att_id}/content").content == b"hello"
    assert rec.call("POST", f"{c}/typing", {"authorType": "user"}).status_code == 204
    assert rec.call("POST", f"{c}/typing", {"authorType": "agent"}, valid=False).status_code == 400
    assert rec.call("POST", f"{P}/conversations/nope/typing", {"authorType": "user"}).status_code == 404
    assert rec.call("POST", f"{c}/thinking", {"authorType": "bot", "maxThinkingTimeSeconds": 5}).status_code == 204
    assert (
        rec.call("POST", f"{c}/read-receipt", {"authorType": "user", "readAt": int(time.time() * 1000)}).status_code
        == 204
    )
    assignment = {
        "type": "webhook",
        "id": hook_id,
        "configuration": {"notifyChannelWebhookIfExists": "false", "maxTotalMinutes": 300, "userTimeoutInMinutes": 150},
    }
    assert rec.call("POST", f"{c}/post-agent-assignment", assignment).status_code == 201
    assert rec.call("PATCH", f"{c}/participants/user", {"removed": True}).status_code == 204
    assert rec.call("PATCH", f"{P}/conversations/nope/participants/user", {"removed": True}).status_code == 404
    assert rec.call("GET", f"{c}/interactions").json()["_embedded"]["interactions"][0]["endTime"]
    assert rec.call("PATCH", c, {"assignment": {"type": "queue", "id": "102"}}).json()["state"] == "active"

    kid = emulator.engine.keys.active.kid
    assert rec.call("GET", f"{P}/jwk/{kid}/public", headers={}).status_code == 200
    assert rec.call("GET", f"{P}/jwk/unknown/public", headers={}).status_code == 404

    assert rec.call("DELETE", f"{P}/channels/{ch_id}").status_code == 204
    assert rec.call("DELETE", f"{P}/channels/{ch_id}").status_code == 404
    assert rec.call("DELETE", f"{P}/webhooks/{hook_id}").status_code == 204
    assert rec.call("DELETE", f"{P}/webhooks/{hook_id}").status_code == 404

    methods = ("get", "post", "put", "patch", "delete")
    all_ops = {(p, m) for p, ops in spec["paths"].items() for m in ops if m in methods and p not in NOT_EMULATED}
    assert rec.covered() == all_ops

    findings = rec.findings()
    untolerated = {f for f in findings if not any(t.covers(f) for t in TOLERATED.values())}
    assert untolerated == set()
    unused = {trap for trap, t in TOLERATED.items() if not any(t.covers(f) for f in findings)}
    assert unused == set(), f"tolerated traps that no longer occur: {unused}"
