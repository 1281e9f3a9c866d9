"""The desk's HTTP surface: the page's static files and its small JSON API (`/desk/api/...`)."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cc_emulator.delivery import now_ms
from cc_emulator.http_base import (
    SHARED_STATIC,
    Handler,
    Request,
    Response,
    Route,
    answer_errors,
    error_json,
    mount,
    static_file,
)
from cc_emulator.model import Agent, AgentState, Conversation, InvalidState, NotFound

if TYPE_CHECKING:
    from cc_emulator.engine import Engine
    from cc_emulator.faults import FaultRule

P = "/desk"
STATIC = Path(__file__).parent / "static"
# The Gateway's typing call has no "stopped": the customer counts as typing this long after the last one.
CUSTOMER_TYPING_MS = 6000
# Only these render inline at the desk's origin; anything else downloads (an HTML file must never run here).
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "application/pdf")


_error = error_json


class DeskSurface:
    name = "desk"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Agents signed in at a desk, with the mode they had before (a scripted agent gets its script back).
        self._signed_in: dict[str, str] = {}
        # Each signed-in agent's last heartbeat (monotonic), and when its pending expiry check runs.
        self._seen: dict[str, float] = {}
        self._check_at: dict[str, float] = {}

    def routes(self) -> list[Route]:
        table = [
            ("GET", "", "desk.page", self.page),
            ("GET", "/", "desk.page", self.page),
            ("GET", "/static/{name}", "desk.static", self.static),
            ("GET", "/api/snapshot", "desk.snapshot", self.snapshot),
            ("POST", "/api/agents/{id}/signin", "desk.signin", self.signin),
            ("POST", "/api/agents/{id}/signout", "desk.signout", self.signout),
            ("GET", "/api/conversations/{cid}/attachments/{aid}", "desk.attachment", self.attachment),
        ]
        return mount(self, P, table, self._wrap, faultable=False)

    def not_found(self, req: Request) -> Response | None:
        return _error(404, f"no desk route {req.method} {req.path}") if req.path.startswith(P + "/") else None

    def fault_response(self, op: str, rule: FaultRule) -> Response:  # pragma: no cover - not faultable
        return _error(rule.status, "fault")

    def _wrap(self, handler: Handler, op: str) -> Handler:
        return answer_errors(handler, conflict=(InvalidState,))

    # -- static ------------------------------------------------------------------------------

    def page(self, req: Request) -> Response:
        return self._file("index.html")

    def static(self, req: Request) -> Response:
        return self._file(req.params["name"])

    @staticmethod
    def _file(name: str) -> Response:
        return static_file(name, STATIC, SHARED_STATIC) or _error(404, f"no desk file {name}")

    # -- agents ------------------------------------------------------------------------------

    def _agent(self, agent_id: str) -> Agent:
        agent = self.engine.agents.get(agent_id)
        if agent is None:
            raise NotFound("Agent", agent_id)
        return agent

    def signin(self, req: Request) -> Response:
        """A person sits down at this agent's desk: the agent stops following its script. The page repeats this
        as its heartbeat; `deskSignInTtl` seconds without one sign the agent out (the tab went)."""
        with self.engine.lock:
            agent = self._agent(req.params["id"])
            self._signed_in.setdefault(agent.id, agent.mode)
            agent.mode = "manual"
            # Drops any idle wrap-up timer the script armed: a person decides when to end.
            agent.activity += 1
            now = time.monotonic()
            self._seen[agent.id] = now
            ttl = self.engine.config.timings.desk_signin_ttl
            # One pending check per agent; armed again if it never ran (an emulator reset drops scheduled calls)
            # or runs later than a shortened TTL needs.
            check_at = self._check_at.get(agent.id, -1.0)
            if check_at < now - 1.0 or check_at > now + ttl + 0.05:
                self._arm_expiry(agent.id, ttl)
            return Response.json(200, {"id": agent.id, "mode": agent.mode, "heartbeatSeconds": ttl / 3})

    def _arm_expiry(self, agent_id: str, delay: float) -> None:
        self._check_at[agent_id] = time.monotonic() + delay
        self.engine.scheduler.call_later(delay, functools.partial(self._expire_if_gone, agent_id), background=True)

    def _expire_if_gone(self, agent_id: str) -> None:
        with self.engine.lock:
            self._check_at.pop(agent_id, None)
            if agent_id not in self._signed_in:
                return
            remaining = self._seen.get(agent_id, 0.0) + self.engine.config.timings.desk_signin_ttl - time.monotonic()
            if remaining > 0:
                self._arm_expiry(agent_id, remaining)
                return
            agent = self.engine.agents.get(agent_id)
            if agent is not None:
                self._sign_out(agent)

    def _sign_out(self, agent: Agent) -> None:
        agent.mode = self._signed_in.pop(agent.id, agent.mode)
        self._seen.pop(agent.id, None)
        self.engine.router.resume_script(agent)

    def signout(self, req: Request) -> Response:
        with self.engine.lock:
            agent = self._agent(req.params["id"])
            if agent.state == AgentState.HANDLING:
                raise InvalidState(f"agent {agent.id} is in conversation {agent.conversation_id}: end it first")
            self._sign_out(agent)
            return Response.json(200, {"id": agent.id, "mode": agent.mode})

    # -- the snapshot the page polls ---------------------------------------------------------

    def snapshot(self, req: Request) -> Response:
        agent_id = req.q("agent")
        with self.engine.lock:
            body = self._snapshot(agent_id)
        data = json.dumps(body, sort_keys=True).encode("utf-8")
        etag = hashlib.sha256(data).hexdigest()[:16]
        # The page sends the last version it drew: unchanged snapshots cost a few bytes.
        if req.q("etag") == etag:
            return Response.json(200, {"etag": etag, "unchanged": True})
        return Response.json(200, {**body, "etag": etag})

    def _snapshot(self, agent_id: str | None) -> dict[str, Any]:
        e = self.engine
        me = e.agents.get(agent_id) if agent_id else None
        conversation = None
        if me is not None and me.conversation_id and me.state == AgentState.HANDLING:
            conversation = self._conversation(e.conversations[me.conversation_id])
        return {
            "agents": [
                {
                    "id": a.id,
                    "name": a.name,
                    "queues": list(a.queues),
                    "state": str(a.state),
                    "available": a.available,
                    "signedIn": a.id in self._signed_in,
                    "conversationId": a.conversation_id,
                }
                for a in e.agents.values()
            ],
            "queues": [
                {
                    "id": q.id,
                    "name": q.name,
                    "status": q.status,
                    "waiting": [self._waiting(e.conversations[cid]) for cid in q.waiting if cid in e.conversations],
                }
                for q in e.queues.values()
            ],
            "me": None if me is None else me.id,
            "conversation": conversation,
        }

    @staticmethod
    def _customer_name(conv: Conversation) -> str:
        return conv.customer.get("name") or conv.customer.get("email") or conv.customer_participant_id

    def _waiting(self, conv: Conversation) -> dict[str, Any]:
        inter = conv.current
        last = next((m for m in reversed(conv.messages) if m.author_type == "user"), None)
        return {
            "conversationId": conv.id,
            "customerName": self._customer_name(conv),
            "since": int((inter.start if inter else conv.created) * 1000),
            "lastText": last.text if last else "",
            "interactions": len(conv.interactions),
            "transferred": bool(inter and inter.transfers),
        }

    def _conversation(self, conv: Conversation) -> dict[str, Any]:
        transcript = self.engine.transcript(conv.id)
        names = {a.id: a.name for a in self.engine.agents.values()}
        queues = {q.id: q.name for q in self.engine.queues.values()}
        attachments = {
            a.id: {
                "id": a.id,
                "filename": a.filename,
                "contentType": a.content_type,
                "size": len(a.data),
                "url": f"{P}/api/conversations/{quote(conv.id)}/attachments/{quote(a.id)}",
            }
            for a in conv.attachments.values()
        }
        last_user = max((m.timestamp for m in conv.messages if m.author_type == "user"), default=0)
        last_typing = max((int(t.get("timestamp", 0)) for t in conv.user_typing), default=0)
        typing = last_typing > last_user and now_ms() - last_typing < CUSTOMER_TYPING_MS
        inters = transcript["interactions"]
        for inter in inters:
            inter["queueName"] = queues.get(inter["queueId"], inter["queueId"])
            inter["agentNames"] = [names.get(a, a) for a in inter["agents"]]
            # The queues it went through: where it started, then each transfer's target.
            path = [t.get("from", "") for t in inter["transfers"][:1]] + [t.get("to", "") for t in inter["transfers"]]
            inter["queueNames"] = [queues.get(q, q) for q in path] or [inter["queueName"]]
        read_by_user = int(transcript["readBy"].get("user") or 0)
        messages = [
            {
                # The customer's side said it read up to here (Gateway read receipt).
                "seen": m["authorType"] == "agent" and m["timestamp"] <= read_by_user,
                "id": m["id"],
                "interactionId": m["interactionId"],
                "authorType": m["authorType"],
                "author": names.get(m["senderId"], m["senderId"]) if m["authorType"] == "agent" else m["authorType"],
                "text": m["text"],
                "timestamp": m["timestamp"],
                "history": m["history"],
                "attachments": [attachments[a] for a in m["attachments"] if a in attachments],
            }
            for m in transcript["transcript"]
        ]
        return {
            "id": conv.id,
            "customer": transcript["customer"],
            "customerName": self._customer_name(conv),
            "queueId": conv.last_queue_id,
            "queueName": queues.get(conv.last_queue_id, conv.last_queue_id),
            "interactions": inters,
            "messages": messages,
            "customerTyping": typing,
            "customerLeft": conv.customer_left,
            "customerIdle": transcript["customerIdle"],
            "botThinking": (transcript["thinkingUntil"] or 0) > now_ms(),
            "lastCustomerAt": last_user,
            "agentReadAt": transcript["agentReadAt"] or 0,
            "wrapUpCodes": self.engine.wrap_up_codes(conv.current.queue_id if conv.current else conv.last_queue_id),
        }

    # -- files -------------------------------------------------------------------------------

    def attachment(self, req: Request) -> Response:
        att = self.engine.get_attachment(req.params["cid"], req.params["aid"])
        inline = att.content_type.split(";")[0].strip().lower() in INLINE_TYPES
        disposition = "inline" if inline else "attachment"
        return Response(
            200,
            att.data,
            {
                "Content-Type": att.content_type if inline else "application/octet-stream",
                "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(att.filename)}",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
                "Cache-Control": "private, max-age=60",
                "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(att.created)),
            },
        )
