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
from .engine import EXTERNAL_AUTHOR_TYPES, Conversation, Engine, Message, Validation, ValidationFailed, Webhook, iso
from .faults import FaultRule
from .http_apis import JsonBody, SharedHandlers, engine_errors
from .http_base import Handler, Request, Response, Route, mount, route
from .tokens import CHAT_PRODUCT

PROBLEM = "application/problem+json"
EVENT_VERSIONS = ("v1.0", "v2.0")
# Channel creation answers 400 as ValidationExceptionPayload; the other operations as ConstraintViolationProblem.
DETAILED_ERRORS = frozenset({"create_channel"})
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


def _version(body: JsonBody, field: str) -> str:
    version = body.optional_string(field) or ""
    if version and version not in EVENT_VERSIONS:
        body.fail(field, version, "invalid_version", f"must be one of {list(EVENT_VERSIONS)}")
    return version


class ChatApiV2Surface(SharedHandlers):
    name = "v2"
    body_type = _Body
    verify_failure = "WEB_HOOK_VERIFY was not answered with 2xx"
    webhooks_path = "/web-hooks"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        cfg = engine.config
        self.prefix = f"/vcc/{cfg.region}/chat/v2/tenant/{{tenant}}"

    # -- routing -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        tenant_scoped = [
            *self.shared_routes(),
            ("DELETE", "/conversations/{id}/participants/customer", "customer_leaves", self.customer_leaves),
        ]
        return [
            route(self, "POST", "/oauth/v2/token", "token", self.token),
            route(self, "GET", f"/vcc/{self.engine.config.region}/chat/v2/jwk/{{kid}}/public", "jwk", self.jwk),
            *mount(self, self.prefix, tenant_scoped, self._tenant),
        ]

    def one(self, status: int, view: dict[str, Any]) -> Response:
        return Response.json(status, view)

    def many(self, req: Request, key: str, views: list[dict[str, Any]]) -> Response:
        items, meta = _page(req, views)
        return Response.json(200, {"data": items, **meta})

    def not_found(self, req: Request) -> Response | None:
        if req.path.startswith("/vcc/") or req.path.startswith("/oauth/"):
            return _problem(404, "Resource not found.", [f"No resource at {req.method} {req.path}"])
        return None

    def fault_response(self, op: str, rule: FaultRule) -> Response:
        status = rule.status
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
        resp.headers.update(rule.retry_after_headers())
        return resp

    def _tenant(self, handler: Handler, op: str) -> Handler:
        """Bearer auth, tenant check, and engine errors to 8x8 error shapes."""
        detailed_errors = op in DETAILED_ERRORS
        guarded = engine_errors(
            handler,
            lambda validations: validation_problem(validations, detailed_errors),
            lambda exc: _problem(404, "Resource not found.", [f"{exc.resource_type} {exc.resource_id} not found."]),
            body_field="body",
        )

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
            return guarded(req)

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
        # One token endpoint for 8x8's OAuth APIs: the key's products decide what the token opens.
        products = self.engine.token_products(key, secret)
        if not products:
            return Response.json(401, {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}, PROBLEM)
        form = parse_qs(req.body.decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "client_credentials":
            return Response.json(400, {"ErrorCode": "invalid_request", "Error": "Unsupported grant type"}, PROBLEM)
        # A Real-time Metrics key alone (ESCALATION.md section 1) gets "BearerToken" and expires_in "1799".
        chat = CHAT_PRODUCT in products
        token, ttl = self.engine.tokens.issue(products, None if chat else self.engine.config.metrics_token_ttl)
        token_type = "Bearer" if chat else "BearerToken"
        return Response.json(
            200,
            {
                "access_token": token,
                "token_type": token_type,
                "expires_in": str(ttl),
                "issued_at": str(now_ms()),
                "client_id": key,
                "api_product_list": sorted(products),
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

    def _webhook(self, h: Webhook) -> dict[str, Any]:
        return {**super()._webhook(h), "notificationVersion": h.version}

    def _webhook_body(self, req: Request) -> tuple[str, str, str]:
        body = _Body(req)
        name = body.string("name", max_len=256)
        uri = body.http_uri("uri")
        version = _version(body, "notificationVersion")
        body.check()
        return name, uri, version

    def webhook_version(self, body: JsonBody) -> str:
        return _version(body, "version")

    # -- channels ----------------------------------------------------------------------------

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

    # -- conversations -----------------------------------------------------------------------

    def _conversation(self, c: Conversation) -> dict[str, Any]:
        return {
            "id": c.id,
            "channelId": c.channel_id,
            "customer": dict(c.customer),
            "startTime": iso(c.created),
            "status": c.status,
            "interactions": [self._interaction(i) for i in c.interactions],
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
        return self.many(req, "conversations", [self._conversation(c) for c in convs])

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
