"""The Contact Center Chat Gateway v1 HTTP surface (shapes per chat-gateway-v1.openapi.yml and GATEWAY.md).

`x-api-key` auth, optional `X-8x8-Tenant` check, HAL bodies (`application/hal+json`) and the
per-endpoint problem shapes (`application/problem+json`) of GATEWAY.md section 1.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .engine import (
    EXTERNAL_AUTHOR_TYPES,
    GATEWAY_VERSION,
    Attachment,
    Channel,
    Conversation,
    Message,
    NotFound,
    Validation,
    ValidationFailed,
    iso,
)
from .faults import FaultRule
from .gateway_handoff import GatewayHandoffHandlers
from .gateway_wire import (
    DEFAULT,
    ERRORS_BY_OP,
    MAX_ATTACHMENT_BYTES,
    PROBLEM,
    GatewayBody,
    P,
    attachment_refs,
    generic,
    hal,
    hal_list,
    parse_assignment,
    parse_cards,
    parse_multipart,
    parse_user,
    unauthorized,
)
from .http_apis import JsonBody, SharedHandlers, engine_errors
from .http_base import Handler, Request, Response, Route, mount, route
from .model import MAX_HISTORY_MESSAGES, gateway_user

# -- the surface --------------------------------------------------------------------------------


class ChatGatewaySurface(GatewayHandoffHandlers, SharedHandlers):
    name = "gateway"
    body_type = GatewayBody
    verify_failure = "WEB_HOOK_VERIFY got no 2xx"
    webhooks_path = "/webhooks"

    def routes(self) -> list[Route]:
        c = "/conversations/{id}"
        with_api_key = [
            *self.shared_routes(),
            ("PUT", c, "update_conversation", self.put_conversation),
            ("PATCH", c, "patch_conversation", self.patch_conversation),
            ("GET", c + "/interactions", "list_interactions", self.list_interactions),
            ("PATCH", c + "/participants/user", "customer_leaves", self.user_leaves),
            ("GET", c + "/messages/{mid}", "get_message", self.get_message),
            ("GET", c + "/messages/{mid}/cards", "list_cards", self.list_cards),
            ("GET", c + "/attachments", "list_attachments", self.list_attachments),
            ("POST", c + "/attachments", "upload_attachment", self.upload_attachment),
            ("GET", c + "/attachments/{att}", "get_attachment", self.get_attachment),
            ("GET", c + "/attachments/{att}/content", "download_attachment", self.download_attachment),
            ("POST", c + "/typing", "typing", self.typing),
            ("POST", c + "/thinking", "thinking", self.thinking),
            ("POST", c + "/read-receipt", "read_receipt", self.read_receipt),
            ("POST", c + "/post-agent-assignment", "post_agent_assignment", self.post_agent_assignment),
        ]
        return [
            route(self, "GET", P + "/jwk/{kid}/public", "jwk", self.jwk),
            route(self, "GET", "/_storage/attachments/{att}/{filename}", "presigned_download", self.presigned, False),
            *mount(self, P, with_api_key, self._auth),
        ]

    def one(self, status: int, view: dict[str, Any]) -> Response:
        return hal(status, view)

    def many(self, req: Request, key: str, views: list[dict[str, Any]]) -> Response:
        return hal_list(req, key, views)

    def not_found(self, req: Request) -> Response | None:
        if req.path.startswith(P + "/") or req.path == P:
            return Response.json(
                404, {"message": "Resource not found", "errors": [f"No resource at {req.method} {req.path}"]}, PROBLEM
            )
        return None

    def fault_response(self, op: str, rule: FaultRule) -> Response:
        resp = generic(
            rule.status,
            "Internal server error" if rule.status == 500 else f"Injected fault {rule.status}",
            [("injected_fault", f"injected {rule.kind} fault")],
        )
        resp.headers.update(rule.retry_after_headers())
        return resp

    def _auth(self, handler: Handler, op: str) -> Handler:
        """x-api-key, the optional X-8x8-Tenant check, and engine errors to this endpoint's problem shapes."""
        errors = ERRORS_BY_OP.get(op, DEFAULT)
        guarded = engine_errors(
            handler,
            errors.bad_request_response,
            lambda exc: errors.not_found_response(f"{exc.resource_type} {exc.resource_id} not found"),
        )

        def wrapped(req: Request) -> Response:
            if not self.engine.check_api_key(req.headers.get("x-api-key") or ""):
                return unauthorized()
            tenant = req.headers.get("X-8x8-Tenant")
            if tenant is not None and tenant != self.engine.config.tenant_id:
                customer = self.engine.config.customer_id
                return errors.forbidden_response(
                    f"Header X-8x8-Tenant doesn't match tenant information for customerId={customer}"
                )
            return guarded(req)

        return wrapped

    # -- keys --------------------------------------------------------------------------------

    def jwk(self, req: Request) -> Response:
        jwk = self.engine.keys.jwk(req.params["kid"])
        if jwk is None:
            return Response.json(
                404, {"message": "Resource not found", "errors": [f"JWK {req.params['kid']} not found"]}, PROBLEM
            )
        return Response.json(200, jwk)

    def presigned(self, req: Request) -> Response:
        att = self.engine.presigned_attachment(req.params["att"], req.q("expires") or "", req.q("signature") or "")
        if att is None:
            return Response.json(403, {"message": "Request has expired or the signature does not match"})
        return self._content(att, att.content_type)

    # -- webhooks ----------------------------------------------------------------------------

    def _webhook_body(self, req: Request) -> tuple[str, str, str]:
        body = GatewayBody(req)
        name = body.string("name", max_len=256) or ""
        uri = body.http_uri("uri")
        # The file requires `notificationVersion` but defines `version` (trap T1): accept either.
        version = body.data.get("version", body.data.get("notificationVersion", GATEWAY_VERSION))
        if version != GATEWAY_VERSION:
            body.fail("version", version, "invalid_version", f"must be {GATEWAY_VERSION!r}")
        body.check()
        return name, uri, GATEWAY_VERSION

    def webhook_version(self, body: JsonBody) -> str:
        return body.optional_string("version") or ""

    # -- channels ----------------------------------------------------------------------------

    def _channel(self, c: Channel) -> dict[str, Any]:
        return {**super()._channel(c), "type": c.type}

    def _channel_body(self, req: Request) -> tuple[str, str, str, str]:
        body = GatewayBody(req)
        name = body.string("name", max_len=255) or ""
        channel_type = body.string("type", required=False) or "ChatAPI"
        if channel_type != "ChatAPI":
            body.fail("type", channel_type, "invalid_value", "only ChatAPI channels can be created using the API")
        webhook_id = body.string("webHookId") or ""
        routing = body.data.get("routingOptions")
        queue_id = ""
        if not isinstance(routing, dict):
            body.fail("routingOptions", routing, "not_null", "must be an object {type, id}")
        else:
            if routing.get("type") != "queue":
                body.fail("routingOptions.type", routing.get("type"), "invalid_value", "must be 'queue'")
            queue_id = body.string("id", src=routing) or ""
        body.check()
        return name, webhook_id, queue_id, channel_type

    # -- conversations -----------------------------------------------------------------------

    @staticmethod
    def _conversation(c: Conversation) -> dict[str, Any]:
        return {
            "id": c.id,
            "channelId": c.channel_id,
            "assignment": c.assignment(),
            "user": gateway_user(c),
            "state": c.gateway_state,
            "createdAt": iso(c.created),
        }

    def create_conversation(self, req: Request) -> Response:
        body = GatewayBody(req)
        channel_id = body.string("channelId") or ""
        customer: dict[str, str] = {}
        props: list[dict[str, str]] = []
        if body.data.get("user") is None:
            body.fail("user", None, "not_null", "must not be null")
        else:
            customer, props = parse_user(body, body.data["user"])
        assignment = parse_assignment(body, body.data.get("assignment"))
        history: list[dict[str, Any]] = []
        too_many = f"must have at most {MAX_HISTORY_MESSAGES} items"
        for label, item in body.history_messages(MAX_HISTORY_MESSAGES, too_many):
            author = item.get("authorType", "user")
            if author not in EXTERNAL_AUTHOR_TYPES:
                body.fail(f"{label}.authorType", author, "invalid_value", "must be one of [user, bot]")
            text = body.string("text", required=False, src=item)
            history.append(
                {"authorType": author, "text": text or "", "cards": parse_cards(body, item.get("cards"), label)}
            )
        body.check()
        conv = self.engine.create_conversation(channel_id, customer, history, props, assignment)
        return hal(202, {"conversationId": conv.id, "createdAt": iso(conv.created)})

    def list_conversations(self, req: Request) -> Response:
        views = [self._conversation(c) for c in self.engine.list_conversations()]
        return hal_list(
            req, "conversations", views, sort_keys={"id": lambda v: v["id"], "createdAt": lambda v: v["createdAt"]}
        )

    def _update(self, req: Request, body: GatewayBody) -> Response:
        customer: dict[str, str] | None = None
        props: list[dict[str, str]] | None = None
        if body.data.get("user") is not None:
            customer, props = parse_user(body, body.data["user"])
        assignment = parse_assignment(body, body.data.get("assignment"))
        channel_id = body.string("channelId", required=False)
        body.check()
        conv = self.engine.update_conversation(req.params["id"], channel_id, customer, props, assignment)
        return hal(202, self._conversation(conv))

    def put_conversation(self, req: Request) -> Response:
        self.engine.get_conversation(req.params["id"])
        return self._update(req, GatewayBody(req, allow_empty=True))

    def patch_conversation(self, req: Request) -> Response:
        self.engine.get_conversation(req.params["id"])
        body = GatewayBody(req)
        if "assignment" not in body.data and "user" not in body.data:
            body.fail("", None, "invalid_value", "body must carry assignment and/or user")
        return self._update(req, body)

    def list_interactions(self, req: Request) -> Response:
        conv = self.engine.get_conversation(req.params["id"])
        with self.engine.lock:
            views = [self._interaction(i) for i in conv.interactions]
        return hal_list(req, "interactions", views, filterable=False)

    def get_participants(self, req: Request) -> Response:
        parts = self.engine.participants(req.params["id"])
        views = [{"id": p["id"], "removed": p["removed"], "type": p["type"], "language": p["language"]} for p in parts]
        return hal_list(req, "participants", views, filterable=False)

    def user_leaves(self, req: Request) -> Response:
        self.engine.get_conversation(req.params["id"])
        body = GatewayBody(req, allow_empty=True)
        removed = body.data.get("removed", True)
        if not isinstance(removed, bool):
            body.fail("removed", removed, "invalid_value", "must be a boolean")
        body.check()
        if removed:
            self.engine.customer_leaves(req.params["id"], announce=True)
        return Response.empty(204)

    # -- messages ----------------------------------------------------------------------------

    def _message(self, conv: Conversation, m: Message, participants: dict[str, dict[str, Any]]) -> dict[str, Any]:
        part = participants.get(m.sender_id, {})
        view: dict[str, Any] = {
            "id": m.id,
            "text": m.text,
            "createdAt": iso(m.timestamp / 1000),
            "author": {
                "id": m.sender_id,
                "removed": bool(part.get("removed", False)),
                "type": m.author_type,
                "language": conv.customer.get("language", "en"),
            },
        }
        if m.attachments:
            view["attachments"] = [{"id": a} for a in m.attachments]
        if m.cards:
            view["cards"] = [self._card(c) for c in m.cards]
        return view

    @staticmethod
    def _card(c: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(c.get("id", "")),
            "contentType": c.get("contentType"),
            "content": c.get("content", {}),
            "actionSubmitted": False,
            "actionExecuted": False,
        }

    def _message_views(self, conv_id: str) -> tuple[Conversation, list[dict[str, Any]]]:
        conv = self.engine.get_conversation(conv_id)
        parts = {p["id"]: p for p in self.engine.participants(conv_id)}
        with self.engine.lock:
            return conv, [self._message(conv, m, parts) for m in conv.messages]

    def list_messages(self, req: Request) -> Response:
        _, views = self._message_views(req.params["id"])
        order = {v["id"]: n for n, v in enumerate(views)}
        return hal_list(
            req,
            "messages",
            views,
            default_sort="createdAt:desc",
            sort_keys={"createdAt": lambda v: order[v["id"]], "id": lambda v: order[v["id"]]},
            filterable=False,
        )

    def get_message(self, req: Request) -> Response:
        _, views = self._message_views(req.params["id"])
        found = next((v for v in views if v["id"] == req.params["mid"]), None)
        if found is None:
            raise NotFound("Message", req.params["mid"])
        return hal(200, found)

    def list_cards(self, req: Request) -> Response:
        conv = self.engine.get_conversation(req.params["id"])
        msg = next((m for m in conv.messages if m.id == req.params["mid"]), None)
        if msg is None:
            raise NotFound("Message", req.params["mid"])
        return hal_list(req, "cards", [self._card(c) for c in msg.cards], filterable=False)

    def post_message(self, req: Request) -> Response:
        conv = self.engine.get_conversation(req.params["id"])
        body = GatewayBody(req)
        author = body.data.get("authorType")
        if author not in EXTERNAL_AUTHOR_TYPES:
            body.fail("authorType", author, "invalid_value", "has to be one of user, bot")
        text = body.string("text", required=False)
        external = body.data.get("externalProvider")
        if text is not None and external is not None:
            body.fail("text", text, "invalid_value", "text and externalProvider cannot be provided at the same time")
        attachments = attachment_refs(body, body.data.get("attachments"), "attachments")
        cards = parse_cards(body, body.data.get("cards"), "cards")
        if not text and external is None and not attachments and not cards:
            body.fail("text", None, "not_null", "a message needs text, attachments, cards or externalProvider")
        if (
            author == "user"
            and conv.customer_left
            and conv.current is None
            and not self.engine.config.gateway_removed_accepts_messages
        ):
            body.fail("authorType", author, "user_removed", "the user has left the conversation")
        body.check()
        self.engine.post_message(req.params["id"], text or "", str(author), attachments, cards)
        return Response.empty(202)

    # -- attachments -------------------------------------------------------------------------

    @staticmethod
    def _attachment(a: Attachment) -> dict[str, Any]:
        return {"id": a.id, "filename": a.filename, "sizeInBytes": len(a.data), "createdAt": iso(a.created)}

    def upload_attachment(self, req: Request) -> Response:
        conv = self.engine.get_conversation(req.params["id"])
        parts = parse_multipart(req)
        problems = []
        file_part = parts.get("attachment")
        author = parts.get("authorType", (None, "", b"user"))[2].decode("utf-8", "replace").strip() or "user"
        if file_part is None:
            problems.append(Validation("attachment", "", "not_null", "the multipart part 'attachment' is required"))
        elif len(file_part[2]) > MAX_ATTACHMENT_BYTES:
            problems.append(Validation("attachment", "", "max_size", f"at most {MAX_ATTACHMENT_BYTES} bytes"))
        if author not in EXTERNAL_AUTHOR_TYPES:
            problems.append(Validation("authorType", author, "invalid_value", "must be one of [user, bot]"))
        if problems:
            raise ValidationFailed(problems)
        assert file_part is not None
        filename, content_type, data = file_part
        att = self.engine.add_attachment(conv, filename or "attachment", content_type, data, author)
        return hal(200, self._attachment(att))

    def list_attachments(self, req: Request) -> Response:
        conv = self.engine.get_conversation(req.params["id"])
        with self.engine.lock:
            views = [self._attachment(a) for a in conv.attachments.values()]
        return hal_list(
            req, "attachments", views, sort_keys={"id": lambda v: v["id"], "createdAt": lambda v: v["createdAt"]}
        )

    def get_attachment(self, req: Request) -> Response:
        return hal(200, self._attachment(self.engine.get_attachment(req.params["id"], req.params["att"])))

    def download_attachment(self, req: Request) -> Response:
        return self._content(
            self.engine.get_attachment(req.params["id"], req.params["att"]), "application/octet-stream"
        )

    @staticmethod
    def _content(att: Attachment, content_type: str) -> Response:
        disposition = f"attachment; filename*=UTF-8''{quote(att.filename)}"
        if att.filename.isascii() and '"' not in att.filename:
            disposition = f'attachment; filename="{att.filename}"'
        return Response(200, att.data, {"Content-Type": content_type, "Content-Disposition": disposition})
