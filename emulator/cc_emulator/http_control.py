"""The control API under /_emulator/: inspect state, drive agents, inject faults. JSON, no auth."""

from __future__ import annotations

import time
from typing import Any

from .config import AgentConfig, QueueConfig, ScriptConfig, attachment_spec
from .delivery import DeliveryQuery, DeliveryRecord
from .engine import Engine, EngineError, InvalidState, ValidationFailed
from .faults import FaultRule
from .http_base import BadRequest, Handler, Request, Response, Route, answer_errors, error_json, mount

P = "/_emulator"


_error = error_json


class ControlSurface:
    name = "control"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def routes(self) -> list[Route]:
        table = [
            ("GET", "/health", "control.health", lambda req: Response.json(200, {"ok": True})),
            ("GET", "/state", "control.state", lambda req: Response.json(200, self.engine.state())),
            ("POST", "/reset", "control.reset", self.reset),
            ("GET", "/deliveries", "control.deliveries", self.deliveries),
            ("GET", "/deliveries/wait", "control.deliveries_wait", self.deliveries_wait),
            ("POST", "/quiet", "control.quiet", self.quiet),
            ("GET", "/conversations/{id}", "control.conversation", self.conversation),
            ("POST", "/conversations/{id}/messages", "control.customer_message", self.customer_message),
            ("POST", "/queues", "control.add_queue", self.add_queue),
            ("POST", "/queues/{id}/status", "control.queue_status", self.queue_status),
            ("GET", "/queues/{id}/wrap-up-codes", "control.wrap_up_codes", self.wrap_up_codes),
            ("POST", "/agents", "control.add_agent", self.add_agent),
            ("POST", "/agents/{id}/accept", "control.agent_accept", self.agent_accept),
            ("POST", "/agents/{id}/reply", "control.agent_reply", self.agent_reply),
            ("POST", "/agents/{id}/typing", "control.agent_typing", self.agent_typing),
            ("POST", "/agents/{id}/transfer", "control.agent_transfer", self.agent_transfer),
            ("POST", "/agents/{id}/leave", "control.agent_leave", self.agent_leave),
            ("POST", "/agents/{id}/read", "control.agent_read", self.agent_read),
            ("POST", "/agents/{id}/availability", "control.agent_availability", self.agent_availability),
            ("GET", "/faults", "control.faults", lambda req: Response.json(200, {"faults": self.engine.faults.list()})),
            ("POST", "/faults", "control.add_fault", self.add_fault),
            ("DELETE", "/faults", "control.clear_faults", self.clear_faults),
            ("DELETE", "/faults/{id}", "control.clear_fault", self.clear_fault),
            ("POST", "/tokens/expire", "control.expire_tokens", self.expire_tokens),
            ("POST", "/keys/rotate", "control.rotate_keys", self.rotate_keys),
            ("GET", "/requests", "control.requests", self.requests),
            ("POST", "/provision", "control.provision", self.provision),
            ("GET", "/settings", "control.settings", lambda req: Response.json(200, self.engine.settings())),
            ("POST", "/settings", "control.update_settings", self.update_settings),
            ("PUT", "/settings", "control.update_settings", self.update_settings),
        ]
        return mount(self, P, table, self._wrap, faultable=False)

    def not_found(self, req: Request) -> Response | None:
        return _error(404, f"no control route {req.method} {req.path}") if req.path.startswith(P) else None

    def fault_response(self, op: str, rule: FaultRule) -> Response:  # pragma: no cover - not faultable
        return _error(rule.status, "fault")

    def _wrap(self, handler: Handler, op: str) -> Handler:
        return answer_errors(
            handler,
            conflict=(InvalidState, ValidationFailed),
            invalid=(BadRequest, ValueError, TypeError, KeyError),
            other=(EngineError,),
        )

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        if not req.body:
            return {}
        data = req.json()
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        return data

    # -- handlers ----------------------------------------------------------------------------

    def reset(self, req: Request) -> Response:
        self.engine.reset()
        return Response.json(200, {"ok": True})

    @staticmethod
    def _query(req: Request) -> DeliveryQuery:
        return DeliveryQuery(
            req.q("eventType"),
            req.q("conversationId"),
            (req.q("ok") or "").lower() in ("1", "true"),
            int(req.q("since", "0") or 0),
        )

    @staticmethod
    def _records(records: list[DeliveryRecord]) -> list[dict[str, Any]]:
        return [r.to_dict() for r in records]

    def deliveries(self, req: Request) -> Response:
        found = self._query(req).select(self.engine.delivery.records())
        return Response.json(200, {"deliveries": self._records(found)})

    def deliveries_wait(self, req: Request) -> Response:
        """Long-poll until at least `count` matching attempts exist (408 on timeout)."""
        query = self._query(req)
        count = int(req.q("count", "1") or 1)
        timeout = min(float(req.q("timeout", "5") or 5), 60.0)
        try:
            found = self.engine.delivery.wait_for_count(query.select, count, timeout)
        except TimeoutError:
            found = query.select(self.engine.delivery.records())
            return Response.json(408, {"error": "timeout", "deliveries": self._records(found)})
        return Response.json(200, {"deliveries": self._records(found)})

    def quiet(self, req: Request) -> Response:
        timeout = min(float(req.q("timeout", "5") or 5), 60.0)
        try:
            self.engine.wait_quiet(timeout)
        except TimeoutError as exc:
            return _error(408, str(exc))
        return Response.json(200, {"ok": True})

    def conversation(self, req: Request) -> Response:
        return Response.json(200, self.engine.transcript(req.params["id"]))

    def customer_message(self, req: Request) -> Response:
        body = self._body(req)
        msg = self.engine.post_message(req.params["id"], str(body["text"]), str(body.get("authorType", "user")))
        return Response.json(200, {"id": msg.id, "interactionId": msg.interaction_id})

    def add_queue(self, req: Request) -> Response:
        body = self._body(req)
        q = self.engine.add_queue(QueueConfig(str(body["id"]), str(body.get("name", body["id"]))))
        return Response.json(200, {"id": q.id, "name": q.name})

    def add_agent(self, req: Request) -> Response:
        body = self._body(req)
        script = ScriptConfig(**body.pop("script", {}) or {})
        cfg = AgentConfig(
            id=str(body["id"]),
            name=str(body.get("name", body["id"])),
            queues=[str(q) for q in body.get("queues", [])],
            mode=body.get("mode", "script"),
            script=script,
        )
        agent = self.engine.add_agent(cfg)
        return Response.json(200, {"id": agent.id, "mode": agent.mode, "queues": agent.queues})

    def agent_accept(self, req: Request) -> Response:
        body = self._body(req)
        conv = self.engine.agent_accept(req.params["id"], body.get("conversationId"))
        return Response.json(200, {"conversationId": conv.id})

    def agent_reply(self, req: Request) -> Response:
        body = self._body(req)
        attachments = [attachment_spec(dict(a)) for a in body.get("attachments") or []]
        cards = [dict(c) for c in body.get("cards") or []]
        msg = self.engine.agent_reply(req.params["id"], str(body.get("text") or ""), attachments, cards)
        return Response.json(
            200, {"id": msg.id, "interactionId": msg.interaction_id, "attachments": list(msg.attachments)}
        )

    def agent_typing(self, req: Request) -> Response:
        body = self._body(req)
        typing = body.get("typing", True)
        if not isinstance(typing, bool):
            raise BadRequest("typing must be true or false")
        conv = self.engine.agent_typing(req.params["id"], typing)
        return Response.json(200, {"conversationId": conv.id, "typing": typing})

    def update_settings(self, req: Request) -> Response:
        return Response.json(200, self.engine.update_settings(self._body(req)))

    def agent_transfer(self, req: Request) -> Response:
        body = self._body(req)
        conv = self.engine.agent_transfer(req.params["id"], str(body["queueId"]))
        return Response.json(200, {"conversationId": conv.id})

    def agent_leave(self, req: Request) -> Response:
        code = self._body(req).get("wrapUpCode")
        if code is not None and not isinstance(code, str):
            raise BadRequest("wrapUpCode must be a code's id or name")
        conv = self.engine.agent_leave(req.params["id"], code)
        ended = conv.interactions[-1]
        return Response.json(200, {"conversationId": conv.id, "wrapUpCode": ended.wrap_up_code})

    def agent_read(self, req: Request) -> Response:
        read_at = self._body(req).get("readAt")
        if read_at is not None and (not isinstance(read_at, int) or isinstance(read_at, bool)):
            raise BadRequest("readAt must be epoch milliseconds")
        conv = self.engine.agent_read(req.params["id"], read_at)
        return Response.json(200, {"conversationId": conv.id, "readAt": conv.agent_read_at})

    def queue_status(self, req: Request) -> Response:
        status = self._body(req).get("status")
        self.engine.set_queue_status(req.params["id"], str(status))
        return Response.json(200, {"id": req.params["id"], "status": status})

    def wrap_up_codes(self, req: Request) -> Response:
        return Response.json(200, {"wrapUpCodes": self.engine.wrap_up_codes(req.params["id"])})

    def agent_availability(self, req: Request) -> Response:
        body = self._body(req)
        agent = self.engine.set_agent_available(req.params["id"], bool(body.get("available", True)))
        return Response.json(200, {"id": agent.id, "available": agent.available})

    def add_fault(self, req: Request) -> Response:
        body = self._body(req)
        specs = body.get("faults", [body])
        rules = [self.engine.faults.add_from_dict(dict(s)) for s in specs]
        return Response.json(200, {"faults": [r.to_dict() for r in rules]})

    def clear_faults(self, req: Request) -> Response:
        return Response.json(200, {"cleared": self.engine.faults.clear()})

    def clear_fault(self, req: Request) -> Response:
        cleared = self.engine.faults.clear(int(req.params["id"]))
        if not cleared:
            return _error(404, f"no fault {req.params['id']}")
        return Response.json(200, {"cleared": cleared})

    def expire_tokens(self, req: Request) -> Response:
        return Response.json(200, {"expired": self.engine.tokens.expire_all()})

    def rotate_keys(self, req: Request) -> Response:
        kid = self.engine.keys.rotate()
        return Response.json(200, {"kid": kid, "kids": self.engine.keys.kids()})

    def requests(self, req: Request) -> Response:
        op = req.q("op")
        surface = req.q("surface")
        with self.engine.lock:
            records = [
                r.__dict__.copy()
                for r in self.engine.requests
                if (op is None or r.op == op) and (surface is None or r.surface == surface)
            ]
        return Response.json(200, {"counts": self.engine.request_counts(), "requests": records, "now": time.time()})

    def provision(self, req: Request) -> Response:
        body = self._body(req)
        # `version` ("v2.0" | "Chat Gateway v1.0") or `api` ("chat-api-v2" | "chat-gateway-v1"); v2 by default.
        version = str(body.get("version") or body.get("api") or "v2.0")
        webhook_id, channel_id = self.engine.provision(
            str(body["webhookUri"]), body.get("queueId"), str(body.get("name", "casebridge")), version
        )
        return Response.json(200, {"webHookId": webhook_id, "channelId": channel_id})
