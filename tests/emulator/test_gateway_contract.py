"""Every Chat Gateway v1 request and response the emulator exchanges validates against 8x8's OpenAPI file.

Defects of the file are tolerated only by name: each entry of TOLERATED is a trap id of GATEWAY.md
section 6 with a one-line reason and the exact findings it covers. Every other finding fails the test,
and so does an entry that no longer matches anything (the file or the emulator changed).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from cc_emulator.pytest_plugin import WebhookReceiver
from cc_emulator.server import EmulatorServer

REPO_ROOT = Path(__file__).resolve().parents[2]
P = "/chat-gateway/v1"


@dataclass(frozen=True)
class Finding:
    op: str
    where: str  # "request" or "response <status>"
    message: str


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


def _spec_path() -> Path:
    base = os.environ.get("EIGHTXEIGHT_CONTRACT_DIR")
    directory = Path(base) if base else REPO_ROOT.parent / "shared" / "8x8"
    return directory / "chat-gateway-v1.openapi.yml"


def _deref(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _deref(target, root)
        return {k: _deref(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(v, root) for v in node]
    return node


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    path = _spec_path()
    if not path.is_file():
        pytest.skip(f"8x8 Gateway contract not found at {path}; set EIGHTXEIGHT_CONTRACT_DIR to its directory")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(_deref(raw, raw))


class Recorder:
    """Sends Gateway requests and keeps (path template, method, request body, response) for validation."""

    def __init__(self, emu: EmulatorServer, spec: dict[str, Any]) -> None:
        self.emu = emu
        self.spec = spec
        self.exchanges: list[tuple[str, str, Any, requests.Response]] = []
        self.headers = {"x-api-key": emu.config.api_key, "X-8x8-Tenant": emu.config.tenant_id}
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p)
            for p in sorted(spec["paths"], key=lambda p: p.count("{"))
        ]

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
        template = next(t for rx, t in self._templates if rx.match(path))
        record = body
        if "files" in kwargs:
            # Multipart: validate the form's fields (the file part as a string).
            record = {k: (v[1] if isinstance(v[1], str) else "<binary>") for k, v in kwargs["files"].items()}
        self.exchanges.append((template, method.lower(), record if valid else None, resp))
        return resp

    def findings(self) -> set[Finding]:
        found: set[Finding] = set()
        for template, method, body, resp in self.exchanges:
            op = self.spec["paths"][template][method]
            op_id = op["operationId"]
            request_body = op.get("requestBody")
            if body is not None and request_body:
                schema = next(iter(request_body["content"].values()))["schema"]
                for err in OAS30Validator(schema, format_checker=oas30_format_checker).iter_errors(body):
                    found.add(Finding(op_id, "request", err.message))
            declared = op["responses"].get(str(resp.status_code)) or op["responses"].get("default")
            where = f"response {resp.status_code}"
            if declared is None:
                found.add(Finding(op_id, where, "undeclared status"))
                continue
            content = declared.get("content")
            if not content:
                if resp.content:
                    found.add(Finding(op_id, where, "must have no body"))
                continue
            media = resp.headers.get("Content-Type", "").split(";")[0]
            if media not in content:
                found.add(Finding(op_id, where, f"content type {media} not in {sorted(content)}"))
                continue
            if not media.endswith("json"):
                continue  # binary download: the media type is the contract
            schema = content[media]["schema"]
            for err in OAS30Validator(schema, format_checker=oas30_format_checker).iter_errors(resp.json()):
                found.add(Finding(op_id, where, err.message))
        return found

    def covered(self) -> set[tuple[str, str]]:
        return {(t, m) for t, m, _, _ in self.exchanges}


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
