"""The Analytics for Contact Center Real-time Metrics v5 surface (ESCALATION.md section 1).

Its own OAuth: a Bearer token from `POST /oauth/v2/token` issued for the metrics key and secret (product
`analytics realtime-api`); a Chat API v2 token does not open it, nor the Gateway's `x-api-key`. Served under
`/analytics/cc/v5/realtime-metrics` and the regional `/eu`, `/au`, `/ca` prefixes. `X-Tenant-Info` is required
when `metrics_tenant_info` is set (the multi-tenant case, E1), with 8x8's two 400 messages.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from .faults import FaultRule
from .http_base import Handler, Request, Response, Route, mount
from .metrics import UnknownMetric, select
from .tokens import METRICS_PRODUCT

BASE = "/analytics/cc/v5/realtime-metrics"
REGION_PREFIXES = ("", "/eu", "/au", "/ca")
MAX_PAGE_SIZE = 1000


def _bad_request(message: str) -> Response:
    return Response.json(400, {"message": message})


def _unauthorized(status: str) -> Response:
    """Apigee's fault shape, as the token endpoint's gateway answers."""
    faults = {
        "expired": ("Access Token expired", "keymanagement.service.access_token_expired"),
        "wrong_product": (
            "Invalid API call as no apiproduct match found",
            "keymanagement.service.InvalidAPICallAsNoApiProductMatchFound",
        ),
    }
    text, code = faults.get(status, ("Invalid Access Token", "keymanagement.service.invalid_access_token"))
    return Response.json(401, {"fault": {"faultstring": text, "detail": {"errorcode": code}}})


def _list_param(req: Request, name: str) -> list[str]:
    """A query parameter given repeated or as a comma list."""
    return [item.strip() for value in req.query.get(name, []) for item in value.split(",") if item.strip()]


def _int(req: Request, name: str, default: int) -> int:
    raw = req.q(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise _Refused(f"Bad request: Field '{name}' must be an integer") from exc


class _Refused(Exception):
    """A 400 with 8x8's `{message}` body."""


class RealtimeMetricsSurface:
    name = "metrics"

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def routes(self) -> list[Route]:
        table = [
            ("GET", "/queues", "realtime_queues", self.queues),
            ("GET", "/queues/{id}", "realtime_queue", self.queue),
            ("GET", "/queues/{id}/agents", "realtime_queue_agents", self.queue_agents),
        ]
        return [r for prefix in REGION_PREFIXES for r in mount(self, prefix + BASE, table, self._guard)]

    def not_found(self, req: Request) -> Response | None:
        if any(req.path.startswith(prefix + BASE) for prefix in REGION_PREFIXES):
            return Response.json(404, {"message": f"No resource at {req.method} {req.path}"})
        return None

    def fault_response(self, op: str, rule: FaultRule) -> Response:
        resp = Response.json(
            rule.status, {"message": f"Injected fault {rule.status}", "referenceId": secrets.token_hex(8)}
        )
        resp.headers.update(rule.retry_after_headers())
        return resp

    def _guard(self, handler: Handler, op: str) -> Handler:
        def wrapped(req: Request) -> Response:
            scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _unauthorized("unknown")
            status = self.engine.tokens.status(token.strip(), METRICS_PRODUCT)
            if status != "valid":
                return _unauthorized(status)
            expected = self.engine.config.metrics_tenant_info
            if expected is not None:
                given = req.headers.get("X-Tenant-Info")
                if given is None:
                    return _bad_request("Bad request: X-Tenant-Info header is missing.")
                if given != expected:
                    return _bad_request("Bad request: Invalid value for X-Tenant-Info header.")
            try:
                return handler(req)
            except (_Refused, UnknownMetric) as exc:
                return _bad_request(str(exc))

        return wrapped

    # -- handlers ------------------------------------------------------------------------------

    def _item(self, queue_id: str, figures: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
        return {"id": queue_id, "name": self.engine.queues[queue_id].name, "metrics": select(figures, wanted)}

    def queues(self, req: Request) -> Response:
        snap = self.engine.metrics.snapshot()
        ids = _list_param(req, "queue-ids") or list(snap.queues)
        unknown = [i for i in ids if i not in snap.queues]
        if unknown:
            return Response.json(404, {"message": f"Queue(s) not found: {unknown}"})
        size = _int(req, "size", 100)
        page = _int(req, "page", 0)
        if size > MAX_PAGE_SIZE:
            return _bad_request(f"Bad request: Field 'size' must be less than or equal to {MAX_PAGE_SIZE}")
        if size < 1 or page < 0:
            return _bad_request("Bad request: Fields 'page' and 'size' must not be negative")
        pages = max(1, math.ceil(len(ids) / size))
        if page >= pages:
            return _bad_request(f"Bad request: Page {page} is past the last page {pages - 1}")
        chunk = ids[page * size : (page + 1) * size]
        if (req.q("summary") or "").lower() == "true":
            items: list[dict[str, Any]] = [{"id": i, "name": self.engine.queues[i].name} for i in chunk]
        else:
            wanted = _list_param(req, "metrics")
            items = [self._item(i, snap.queues[i], wanted) for i in chunk]
        resp = Response.json(200, items)
        resp.headers.update(
            {
                "X-Page-Size": str(size),
                "X-Page": str(page),
                "X-Total-Pages": str(pages),
                "X-Total-Elements": str(len(ids)),
            }
        )
        return resp

    def queue(self, req: Request) -> Response:
        snap = self.engine.metrics.snapshot()
        queue_id = req.params["id"]
        if queue_id not in snap.queues:
            return Response.json(404, {"message": f"Queue {queue_id} not found"})
        item = self._item(queue_id, snap.queues[queue_id], _list_param(req, "metrics"))
        # The docs show an array, the OAS an object (E5): a setting picks which.
        return Response.json(200, [item] if self.engine.config.metrics_single_queue_shape == "array" else item)

    def queue_agents(self, req: Request) -> Response:
        queue_id = req.params["id"]
        if queue_id not in self.engine.queues:
            return Response.json(404, {"message": f"Queue {queue_id} not found"})
        wanted = set(_list_param(req, "agent-ids"))
        agents = [a for a in self.engine.metrics.agents(queue_id) if not wanted or a["id"] in wanted]
        return Response.json(200, agents)
