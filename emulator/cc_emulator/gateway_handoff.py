"""The Chat Gateway's indicator and hand-off operations: typing, thinking, read receipt, post-agent assignment
(GATEWAY.md section 2.6, ESCALATION.md sections 4 and 7). Mixed into `ChatGatewaySurface`; 400s are
`InvalidParameterExceptionPayload`, 404s `ResourceNotFoundExceptionPayload` (the surface maps them by operation).
"""

from __future__ import annotations

from typing import Any

from .engine import Engine
from .gateway_wire import GatewayBody
from .http_base import Request, Response

# The post-agent assignment's timers (ESCALATION.md section 4): minutes, within these bounds.
MAX_TOTAL_MINUTES = (20, 600)
USER_TIMEOUT_MINUTES = (10, 300)


def _minutes(body: GatewayBody, config: dict[str, Any], name: str, bounds: tuple[int, int]) -> int | None:
    """An int32 the OAS declares; 8x8's own Cognigy client sends it as a string ("300"), so both are taken."""
    raw = config.get(name)
    if raw is None:
        return None
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw)
    low, high = bounds
    if value is None or not low <= value <= high:
        body.fail(f"configuration.{name}", raw, "invalid_parameter", f"must be an integer {low}..{high}")
        return None
    return value


class GatewayHandoffHandlers:
    engine: Engine

    def _indicator_body(self, req: Request, authors: tuple[str, ...], required: bool = True) -> GatewayBody:
        self.engine.get_conversation(req.params["id"])
        body = GatewayBody(req, allow_empty=not required)
        author = body.data.get("authorType", None if required else authors[0])
        if author not in authors:
            body.fail("authorType", author, "invalid_parameter", f"must be one of {list(authors)}")
        return body

    def typing(self, req: Request) -> Response:
        body = self._indicator_body(req, ("bot", "user"))
        body.check()
        self.engine.user_typing(req.params["id"], str(body.data["authorType"]))
        return Response.empty(204)

    def thinking(self, req: Request) -> Response:
        body = self._indicator_body(req, ("bot",), required=False)
        seconds = body.data.get("maxThinkingTimeSeconds", 60)
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 600:
            body.fail("maxThinkingTimeSeconds", seconds, "invalid_parameter", "must be an integer 1..600")
        body.check()
        self.engine.thinking(req.params["id"], int(seconds))
        return Response.empty(204)

    def read_receipt(self, req: Request) -> Response:
        body = self._indicator_body(req, ("bot", "user"))
        read_at = body.data.get("readAt")
        if not isinstance(read_at, int) or isinstance(read_at, bool) or read_at < 0:
            body.fail("readAt", read_at, "invalid_parameter", "must be epoch milliseconds")
        body.check()
        self.engine.read_receipt(req.params["id"], str(body.data["authorType"]), int(str(read_at)))
        return Response.empty(204)

    def post_agent_assignment(self, req: Request) -> Response:
        self.engine.get_conversation(req.params["id"])
        body = GatewayBody(req)
        if body.data.get("type") != "webhook":
            body.fail("type", body.data.get("type"), "invalid_parameter", "must be 'webhook'")
        webhook_id = body.string("id") or ""
        config = body.data.get("configuration") or {}
        if not isinstance(config, dict):
            body.fail("configuration", config, "invalid_parameter", "must be an object")
            config = {}
        notify = config.get("notifyChannelWebhookIfExists", "false")
        if str(notify).lower() not in ("true", "false"):
            body.fail(
                "configuration.notifyChannelWebhookIfExists", notify, "invalid_parameter", 'must be "true" or "false"'
            )
        max_total = _minutes(body, config, "maxTotalMinutes", MAX_TOTAL_MINUTES)
        user_timeout = _minutes(body, config, "userTimeoutInMinutes", USER_TIMEOUT_MINUTES)
        body.check()
        self.engine.post_agent_assignment(
            req.params["id"], webhook_id, str(notify).lower() == "true", max_total, user_timeout
        )
        return Response.empty(201)
