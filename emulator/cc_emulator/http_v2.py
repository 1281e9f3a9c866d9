"""The Contact Center Chat API v2 HTTP surface (shapes per chat-api-v2.openapi.json)."""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs

from .delivery import now_ms
from .engine import (
    EXTERNAL_AUTHOR_TYPES,
    Channel,
    Conversation,
    Engine,
    EngineError,
    Message,
    NotFound,
    Validation,
    ValidationFailed,
    Webhook,
    iso,
)
from .faults import FaultRule
from .http_base import BadRequest, Handler, JsonBody, Request, Response, Route, SharedHandlers, http_uri, route

PROBLEM = "application/problem+json"
EVENT_VERSIONS = ("v1.0", "v2.0")
T = TypeVar("T")


def _problem(status: int, message: str, errors: list[str], **extra: Any) -> Response:
    return Response.json(status, {"message": message, "errors": errors, **extra}, PROBLEM)


def validation_problem(validations: list[Validation], detailed_errors: bool = False) -> Response:
    """400 answer. Most operations use ConstraintViolationProblem (errors are strings); channel
    creation uses ValidationExceptionPayload (errors are {code, message})."""
    errors: list[Any]
    if detailed_errors:
        errors = [{"code": v.code, "message": v.message} for v in validations]
    else:
        errors = [f"{v.field}: {v.message}" for v in validations]
    body = {
        "message": "Validation failed.",
        "errors": errors,
        "validations": [
            {"field": v.field, "value": v.value, "code": v.code, "message": v.message} for v in validations
        ],
    }
    return Response.json(400, body, PROBLEM)


def _unauthorized(expired: bool) -> Response:
    if expired:
        fault = {
            "faultstring": "Access Token expired",
            "detail": {"errorcode": "keymanagement.service.access_token_expired"},
        }
    else:
        fault = {
            "faultstring": "Invalid Access Token",
            "detail": {"errorcode": "keymanagement.service.invalid_access_token"},
        }
    return Response.json(401, {"fault": fault}, PROBLEM)


def _page(req: Request, items: Sequence[T]) -> tuple[list[T], dict[str, Any]]:
    try:
        size = max(1, int(req.q("size", "20") or 20))
        index = max(0, int(req.q("page", "0") or 0))
    except ValueError as exc:
        raise ValidationFailed([Validation("page", "", "invalid_paging", "page and size must be integers")]) from exc
    chunk = list(items[index * size : (index + 1) * size])
    meta = {
        "page": {
            "pageSize": size,
            "pageIndex": index,
            "elementCount": len(items),
            "pageCount": math.ceil(len(items) / size) if items else 0,
        }
    }
    return chunk, meta


def _v2_participants(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """v2 participants have no `removed` flag."""
    return [{k: v for k, v in p.items() if k != "removed"} for p in parts]


class _Body(JsonBody):
    def string(self, field: str, *args: Any, **kwargs: Any) -> str:
        """Chat API v2 handlers read a missing or bad string as ""."""
        return self.optional_string(field, *args, **kwargs) or ""


_uri = http_uri


def _version(body: JsonBody, field: str) -> str:
    version = body.optional_string(field) or ""
    if version and version not in EVENT_VERSIONS:
        body.fail(field, version, "invalid_version", f"must be one of {list(EVENT_VERSIONS)}")
    return version


class ChatApiV2Surface(SharedHandlers):
    name = "v2"
    body_type = _Body
    verify_failure = "WEB_HOOK_VERIFY was not answered with 2xx"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        cfg = engine.config
        self.prefix = f"/vcc/{cfg.region}/chat/v2/tenant/{{tenant}}"

    # -- routing -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        p = self.prefix
        t = self._tenant
        return [
            route(self, "POST", "/oauth/v2/token", "token", self.token),
            route(self, "GET", f"/vcc/{self.engine.config.region}/chat/v2/jwk/{{kid}}/public", "jwk", self.jwk),
            route(self, "POST", f"{p}/web-hooks/verify", "verify_webhook", t(self.verify_webhook)),
            route(self, "GET", f"{p}/web-hooks", "list_webhooks", t(self.list_webhooks)),
            route(self, "POST", f"{p}/web-hooks", "create_webhook", t(self.create_webhook)),
            route(self, "GET", f"{p}/web-hooks/{{id}}", "get_webhook", t(self.get_webhook)),
            route(self, "PUT", f"{p}/web-hooks/{{id}}", "update_webhook", t(self.update_webhook)),
            route(self, "DELETE", f"{p}/web-hooks/{{id}}", "delete_webhook", t(self.delete_webhook)),
            route(self, "GET", f"{p}/channels", "list_channels", t(self.list_channels)),
            route(self, "POST", f"{p}/channels", "create_channel", t(self.create_channel, detailed_errors=True)),
            route(self, "GET", f"{p}/channels/{{id}}", "get_channel", t(self.get_channel)),
            route(self, "PUT", f"{p}/channels/{{id}}", "update_channel", t(self.update_channel)),
            route(self, "DELETE", f"{p}/channels/{{id}}", "delete_channel", t(self.delete_channel)),
            route(self, "GET", f"{p}/conversations", "list_conversations", t(self.list_conversations)),
            route(self, "POST", f"{p}/conversations", "create_conversation", t(self.create_conversation)),
            route(self, "GET", f"{p}/conversations/{{id}}", "get_conversation", t(self.get_conversation)),
            route(self, "GET", f"{p}/conversations/{{id}}/participants", "get_participants", t(self.get_participants)),
            route(
                self,
                "DELETE",
                f"{p}/conversations/{{id}}/participants/customer",
                "customer_leaves",
                t(self.customer_leaves),
            ),
            route(self, "GET", f"{p}/conversations/{{id}}/messages", "list_messages", t(self.list_messages)),
            route(self, "POST", f"{p}/conversations/{{id}}/messages", "post_message", t(self.post_message)),
        ]

    def not_found(self, req: Request) -> Response | None:
        if req.path.startswith("/vcc/") or req.path.startswith("/oauth/"):
            return _problem(404, "Resource not found.", [f"No resource at {req.method} {req.path}"])
        return None

    def fault_response(self, op: str, rule: FaultRule) -> Response:
        status = rule.status
        headers: dict[str, str] = {}
        if status in (429, 503):
            headers["Retry-After"] = str(rule.retry_after if rule.retry_after is not None else 1)
        if op == "token" and status != 500:
            resp = Response.json(
                status, {"ErrorCode": "service_unavailable", "Error": f"Injected fault {status}"}, PROBLEM
            )
        else:
            resp = _problem(
                status,
                "Internal server error." if status == 500 else f"Injected fault {status}",
                [f"injected {rule.kind} fault"],
                referenceId=secrets.token_hex(8),
            )
        resp.headers.update(headers)
        return resp

    def _tenant(self, handler: Handler, detailed_errors: bool = False) -> Handler:
        """Bearer auth, tenant check, and engine errors to 8x8 error shapes."""

        def wrapped(req: Request) -> Response:
            auth = req.headers.get("Authorization") or ""
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return _unauthorized(expired=False)
            status = self.engine.tokens.status(token.strip())
            if status != "valid":
                return _unauthorized(expired=status == "expired")
            tenant = req.params.get("tenant")
            if tenant != self.engine.config.tenant_id:
                return _problem(
                    403,
                    "Forbidden.",
                    [f"Tenant {tenant} does not belong to customer {self.engine.config.customer_id}."],
                )
            try:
                return handler(req)
            except ValidationFailed as exc:
                return validation_problem(exc.validations, detailed_errors)
            except BadRequest as exc:
                return validation_problem([Validation("body", "", "invalid_body", str(exc))], detailed_errors)
            except NotFound as exc:
                return _problem(404, "Resource not found.", [f"{exc.resource_type} {exc.resource_id} not found."])
            except EngineError as exc:
                return validation_problem([Validation("", "", "invalid_state", str(exc))], detailed_errors)

        return wrapped

    # -- auth / keys -------------------------------------------------------------------------

    def token(self, req: Request) -> Response:
        auth = req.headers.get("Authorization") or ""
        scheme, _, encoded = auth.partition(" ")
        key = secret = ""
        if scheme.lower() == "basic":
            try:
                key, _, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                key = secret = ""
        if not self.engine.check_credentials(key, secret):
            return Response.json(401, {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}, PROBLEM)
        form = parse_qs(req.body.decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "client_credentials":
            return Response.json(400, {"ErrorCode": "invalid_request", "Error": "Unsupported grant type"}, PROBLEM)
        token, ttl = self.engine.tokens.issue()
        return Response.json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": str(ttl),
                "issued_at": str(now_ms()),
                "client_id": key,
                "status": "approved",
                "scope": "",
            },
        )

    def jwk(self, req: Request) -> Response:
        kid = req.params["kid"]
        jwk = self.engine.keys.jwk(kid)
        if jwk is None:
            return Response.json(
                404,
                {
                    "type": "ClientError",
                    "title": "Resource not found.",
                    "status": 404,
                    "detail": "Resource may not exist or is not accessible.",
                    "resourceType": "JWKPublic",
                    "resourceId": kid,
                    "instance": "ResourceNotFound",
                },
                PROBLEM,
            )
        return Response.json(200, jwk)

    # -- webhooks ----------------------------------------------------------------------------

    @staticmethod
    def _webhook(h: Webhook) -> dict[str, Any]:
        return {"id": h.id, "name": h.name, "uri": h.uri, "version": h.version, "notificationVersion": h.version}

    def _webhook_body(self, req: Request) -> tuple[str, str, str]:
        body = _Body(req)
        name = body.string("name", max_len=256)
        uri = _uri(body, "uri")
        version = _version(body, "notificationVersion")
        body.check()
        return name, uri, version

    def list_webhooks(self, req: Request) -> Response:
        items, meta = _page(req, self.engine.list_webhooks())
        return Response.json(200, {"data": [self._webhook(h) for h in items], **meta})

    def create_webhook(self, req: Request) -> Response:
        name, uri, version = self._webhook_body(req)
        return Response.json(200, self._webhook(self.engine.create_webhook(name, uri, version)))

    def get_webhook(self, req: Request) -> Response:
        return Response.json(200, self._webhook(self.engine.get_webhook(req.params["id"])))

    def update_webhook(self, req: Request) -> Response:
        self.engine.get_webhook(req.params["id"])
        name, uri, version = self._webhook_body(req)
        return Response.json(200, self._webhook(self.engine.update_webhook(req.params["id"], name, uri, version)))

    def webhook_version(self, body: JsonBody) -> str:
        return _version(body, "version")

    # -- channels ----------------------------------------------------------------------------

    @staticmethod
    def _channel(c: Channel) -> dict[str, Any]:
        return {
            "id": c.id,
            "name": c.name,
            "webHookId": c.webhook_id,
            "routingOptions": {"type": "queue", "id": c.queue_id},
        }

    def _channel_body(self, req: Request) -> tuple[str, str, str]:
        body = _Body(req)
        name = body.string("name", max_len=255)
        webhook_id = body.string("webHookId")
        routing = body.data.get("routingOptions")
        queue_id = ""
        if not isinstance(routing, dict):
            body.fail("routingOptions", routing, "not_null", "must be an object {type, id}")
        else:
            rtype = body.string("type", src=routing, label="routingOptions.type")
            if rtype and rtype != "queue":
                body.fail("routingOptions.type", rtype, "invalid_value", "must be 'queue'")
            raw_id = routing.get("id")
            queue_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else ""
            if not queue_id:
                body.fail("routingOptions.id", raw_id, "not_null", "must not be null")
        body.check()
        return name, webhook_id, queue_id

    def list_channels(self, req: Request) -> Response:
        items, meta = _page(req, self.engine.list_channels())
        return Response.json(200, {"data": [self._channel(c) for c in items], **meta})

    def create_channel(self, req: Request) -> Response:
        return Response.json(200, self._channel(self.engine.create_channel(*self._channel_body(req))))

    def get_channel(self, req: Request) -> Response:
        return Response.json(200, self._channel(self.engine.get_channel(req.params["id"])))

    def update_channel(self, req: Request) -> Response:
        self.engine.get_channel(req.params["id"])
        name, webhook_id, queue_id = self._channel_body(req)
        return Response.json(
            200, self._channel(self.engine.update_channel(req.params["id"], name, webhook_id, queue_id))
        )

    # -- conversations -----------------------------------------------------------------------

    @staticmethod
    def _conversation(c: Conversation) -> dict[str, Any]:
        interactions = []
        for i in c.interactions:
            info = {"id": i.id, "startTime": iso(i.start)}
            if i.end is not None:
                info["endTime"] = iso(i.end)
            interactions.append(info)
        return {
            "id": c.id,
            "channelId": c.channel_id,
            "customer": dict(c.customer),
            "startTime": iso(c.created),
            "status": c.status,
            "interactions": interactions,
        }

    def create_conversation(self, req: Request) -> Response:
        body = _Body(req)
        channel_id = body.string("channelId")
        # The v2 file names it `user` in `required` but defines `customer`; clients send `customer`.
        customer_raw = body.data.get("customer", body.data.get("user"))
        customer: dict[str, str] = {}
        if customer_raw is None:
            body.fail("customer", None, "not_null", "must not be null")
        elif not isinstance(customer_raw, dict):
            body.fail("customer", customer_raw, "invalid_value", "must be an object")
        else:
            if len(customer_raw) > 30:
                body.fail("customer", len(customer_raw), "max_properties", "must have at most 30 properties")
            for key, value in customer_raw.items():
                if not isinstance(value, str):
                    body.fail(f"customer.{key}", value, "invalid_value", "must be a string")
                else:
                    customer[key] = value
        history: list[dict[str, str]] = []
        for label, item in body.history_messages(200, "must have at most 200 messages"):
            text = body.string("text", src=item, label=f"{label}.text")
            mtype = item.get("type", "user")
            if mtype not in EXTERNAL_AUTHOR_TYPES:
                body.fail(f"{label}.type", mtype, "invalid_value", "must be one of [user, bot]")
            history.append({"text": text, "type": str(mtype)})
        body.check()
        conv = self.engine.create_conversation(channel_id, customer, history)
        return Response.json(202, {"conversationId": conv.id, "timestamp": int(conv.created * 1000)})

    def list_conversations(self, req: Request) -> Response:
        convs = self.engine.list_conversations(req.q("channel-id"), req.q("status"))
        if req.q("order") == "desc":
            convs = list(reversed(convs))
        filters = {k.split(".", 1)[1]: v[0] for k, v in req.query.items() if k.startswith("customer.")}
        if filters:
            convs = [c for c in convs if all(c.customer.get(k) == v for k, v in filters.items())]
        items, meta = _page(req, convs)
        return Response.json(200, {"data": [self._conversation(c) for c in items], **meta})

    def get_conversation(self, req: Request) -> Response:
        return Response.json(200, self._conversation(self.engine.get_conversation(req.params["id"])))

    def get_participants(self, req: Request) -> Response:
        # The v2 file types `participants` as one object, not an array: keyed by participant id.
        parts = _v2_participants(self.engine.participants(req.params["id"]))
        return Response.json(200, {"participants": {p["id"]: p for p in parts}})

    def customer_leaves(self, req: Request) -> Response:
        self.engine.customer_leaves(req.params["id"])
        return Response.empty(204)

    @staticmethod
    def _message(m: Message) -> dict[str, Any]:
        return {
            "id": m.id,
            "interactionId": m.interaction_id,
            "originalText": m.text,
            "type": "TEXT",
            "senderId": m.sender_id,
            "participantId": m.sender_id,
            "authorType": m.author_type,
            "timestamp": m.timestamp,
        }

    def list_messages(self, req: Request) -> Response:
        conv_id = req.params["id"]
        msgs = self.engine.messages(conv_id, req.q("interaction-id"))
        return Response.json(
            200,
            {
                "messages": [self._message(m) for m in msgs],
                "participants": _v2_participants(self.engine.participants(conv_id)),
            },
        )

    def post_message(self, req: Request) -> Response:
        self.engine.get_conversation(req.params["id"])
        body = _Body(req)
        text = body.string("text")
        author = body.data.get("authorType", "user")
        if author not in EXTERNAL_AUTHOR_TYPES:
            body.fail("authorType", author, "invalid_value", "must be one of [user, bot]")
        body.check()
        self.engine.post_message(req.params["id"], text, str(author), reopen="requeue")
        return Response.empty(202)
