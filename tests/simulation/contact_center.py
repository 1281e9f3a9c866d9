"""8x8 in the simulation: a lean model of the emulator's engine for both APIs, reached through a stand-in for the
`requests.Session` the real 8x8 clients use (so their HTTP error mapping runs too), and 8x8's webhook deliveries
to the real intake, signed as CONTRACT.md says, retried, reordered and redelivered.

Each conversation has interactions: one starts when the conversation is created, or when the customer writes
after the last one ended; the seed scripts its agent (joins, answers, types, transfers, leaves). Faults per call:
refused before anything happened; 429/500/503 before the effect; 504, a read timeout or a reset after it.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from tests.support.events import webhook_event
from tests.support.signing import CUSTOMER_ID, TENANT_ID, WebhookSigner

if TYPE_CHECKING:
    from tests.simulation.world import LambdaRuntime, Proc, World

BASE_URL = "https://api.8x8.sim"
CHANNEL_ID = "channel-1"
API_KEY = "sim-api-key"
MAX_DELIVERY_ATTEMPTS = 8
FILE_HOST = "files.8x8.sim"  # where 8x8's pre-signed URLs to agents' files point
_BEFORE = ("refused", "429", "500", "503", "timeout-before")
_AFTER = ("504", "timeout-after", "reset-after")


@dataclass
class Conversation:
    id: str
    case_id: str
    channel_id: str
    interaction: int = 0
    live: bool = False
    agent: str | None = None
    last_ts: int = 0


@dataclass
class Delivery:
    """A customer/bot post that 8x8 took."""

    conversation_id: str
    text: str
    pid: int
    at: float
    answered: bool = True  # the sender got 8x8's 2xx
    attachments: list[str] = field(default_factory=list)  # 8x8's ids of the files it references


@dataclass
class Upload:
    """A file casebridge uploaded to a conversation (POST …/attachments)."""

    conversation_id: str
    file_name: str
    body: bytes


@dataclass
class AgentFile:
    """A file an agent sent: served at its pre-signed URL until it expires, and at …/attachments/{id}/content
    unless 8x8 no longer has it."""

    conversation_id: str
    file_name: str
    body: bytes
    url_expires_at: float
    gone: bool = False


@dataclass(eq=False)
class Emitted:
    """An event 8x8 sent, with what casebridge owes it."""

    event_id: str
    conversation_id: str
    kind: str
    body: bytes
    timeline: bool  # must be on the case's timeline once casebridge answered 2xx
    bus: bool  # must reach the bus
    statuses: list[int] = field(default_factory=list)
    answered_2xx: bool = False
    given_up: bool = False
    faulted_deliveries: int = 0  # deliveries whose invocation met a fault (a second publish is then excused)
    early: bool = False  # casebridge kept it before its case knew the conversation
    files: list[str] = field(default_factory=list)  # an agent message's files (8x8's ids)


class ContactCenterModel:
    def __init__(self, world: World, api: str, signer: WebhookSigner) -> None:
        self.world = world
        self.api = api
        self.gateway = api == "chat-gateway-v1"
        self.signer = signer
        self.conversations: dict[str, Conversation] = {}
        self.deliveries: list[Delivery] = []
        self.uploads: dict[str, Upload] = {}
        self.files: dict[str, AgentFile] = {}
        self._refused: dict[bytes, bool] = {}
        self.emitted: list[Emitted] = []
        self.skew_ms = 0
        self.runtime: LambdaRuntime | None = None
        self._ids = 0
        self.calls = 0
        self.outage: tuple[float, float] | None = None  # 8x8 answers 503 to everything in this window
        self.on_delivery_done: Callable[[Emitted, Proc, int], None] = lambda e, p, s: None

    def _next(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def clock_ms(self) -> int:
        from tests.simulation.world import EPOCH_S  # noqa: PLC0415

        return int((EPOCH_S + self.world.now) * 1000) + self.skew_ms

    # ---- the HTTP surface -------------------------------------------------------------------------
    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        path = unquote(urlsplit(url).path)
        query = kwargs.get("params") or {}
        body = kwargs.get("json")
        route = self._route(path)
        reads = method == "GET" or route[0] in ("token", "jwk")
        kinds = ("refused", "429", "500", "503", "timeout-before") if reads else _BEFORE + _AFTER
        fault = self.world.step(f"8x8 {method} {route[0]} {route[1]}", "contact_center", kinds, latency_s=0.15)
        self.calls += 1
        if self.outage and self.outage[0] <= self.world.now < self.outage[1]:
            proc = self.world.current
            assert proc is not None
            proc.faults += 1  # a dependency injected unavailable
            self.world.faults_injected += 1
            if proc.container is not None:
                proc.container.last_fault_at = self.world.now
            self.world.log(f"   8x8 is down: 503 to p{proc.pid}")
            return _response(503, {"message": "8x8 is down (sim)"})
        if fault == "refused":
            raise requests.ConnectionError("Connection refused (NewConnectionError)")
        if fault == "timeout-before":
            self.world.sleep(5.0)
            raise requests.ReadTimeout("read timed out (sim)")
        if fault in ("429", "500", "503"):
            headers = {"Retry-After": "1"} if fault != "500" else {}
            return _response(int(fault), {"message": "injected"}, headers)
        status, answer = self._handle(method, route, query, body, kwargs)
        if fault in _AFTER and route[0] == "messages":
            self.deliveries[-1].answered = False
        if fault == "504":
            return _response(504, {"message": "gateway timeout"})
        if fault == "timeout-after":
            self.world.sleep(5.0)
            raise requests.ReadTimeout("read timed out (sim)")
        if fault == "reset-after":
            raise requests.ConnectionError("Connection aborted: reset by peer")
        return _response(status, answer)

    def _route(self, path: str) -> tuple[str, str, str]:
        """(operation, conversation id or kid, participant)."""
        if path.endswith("/oauth/v2/token"):
            return "token", "", ""
        match = re.search(r"/jwk/([^/]+)/public$", path)
        if match:
            return "jwk", match.group(1), ""
        match = re.search(r"/conversations/([^/]+)/attachments(?:/([^/]+)/content)?$", path)
        if match:
            return ("content" if match.group(2) else "upload"), match.group(1), match.group(2) or ""
        match = re.search(r"/conversations(?:/([^/]+))?(?:/(messages|typing|participants)(?:/(\w+))?)?$", path)
        if not match:
            raise AssertionError(f"the 8x8 model has no route for {path}")
        conversation, sub, participant = match.group(1) or "", match.group(2) or "", match.group(3) or ""
        if not conversation:
            return "conversations", "", ""
        return (sub or "conversation"), conversation, participant

    def _handle(
        self, method: str, route: tuple[str, str, str], query: dict[str, str], body: Any, kwargs: dict[str, Any]
    ) -> tuple[int, Any]:
        operation, target, _ = route
        if operation == "token":
            return 200, {"access_token": self._next("token-"), "expires_in": "3600", "token_type": "Bearer"}
        if operation == "jwk":
            if target != self.signer.kid:
                return 404, {"message": "unknown kid"}
            return 200, json.dumps(self.signer.public_jwk)
        if operation == "conversations" and method == "POST":
            return self._create(body)
        if operation == "conversations":
            return 200, self._find(query)
        conversation = self.conversations.get(target)
        if conversation is None:
            return 404, {"message": "no such conversation"}
        if operation == "messages":
            return self._post(conversation, body)
        if operation == "upload":
            _, (file_name, stream, _) = next(iter(kwargs["files"].items()))
            content = stream.read()
            if self._refuses(content):  # the channel never takes this file: no retry or redrive can help
                return 415, {"message": "unsupported media type for this channel"}
            upload_id = self._next("att-")
            self.uploads[upload_id] = Upload(conversation.id, str(file_name), content)
            return 201, {"id": upload_id}
        if operation == "content":
            found = self.files.get(route[2])
            if found is None or found.gone or found.conversation_id != conversation.id:
                return 404, {"message": "no such attachment"}
            return 200, _File(found.body)
        if operation == "typing":
            return 204, None
        if operation == "participants":
            self._customer_leaves(conversation)
            return 200, {}
        if method == "PATCH":
            if body and "assignment" in body and not conversation.live:
                self._start_interaction(conversation)
            return 200, {}
        raise AssertionError(f"the 8x8 model cannot {method} {operation}")

    def _refuses(self, content: bytes) -> bool:
        if content not in self._refused:
            self._refused[content] = self.world.draw(20, "8x8 refuses the file") == 0
        return self._refused[content]

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        customer = body.get("user" if self.gateway else "customer") or {}
        conversation = Conversation(self._next("conv-"), str(customer.get("caseId")), str(body["channelId"]))
        self.conversations[conversation.id] = conversation
        self.world.log(f"   8x8: conversation {conversation.id} created for case {conversation.case_id}")
        self._start_interaction(conversation)
        return 201, {"conversationId": conversation.id}

    def _find(self, query: dict[str, str]) -> Any:
        if self.gateway:
            match = re.fullmatch(r'user\.caseId==("?)(.*)\1;channelId==("?)(.*)\3', query.get("filter", ""))
            assert match, query
            case_id, channel_id = match.group(2), match.group(4)
        else:
            case_id, channel_id = query["customer.caseId"], query["channel-id"]
        found = [c for c in self.conversations.values() if c.case_id == case_id and c.channel_id == channel_id]
        if self.gateway:
            items = [{"id": c.id, "channelId": c.channel_id, "user": {"caseId": c.case_id}} for c in found]
            return {"_embedded": {"conversations": items}}
        items = [{"id": c.id, "channelId": c.channel_id, "customer": {"caseId": c.case_id}} for c in reversed(found)]
        return {"data": items}

    def _post(self, conversation: Conversation, body: dict[str, Any]) -> tuple[int, Any]:
        proc = self.world.current
        assert proc is not None
        text = str(body.get("text", ""))
        references = [str(a["id"]) for a in body.get("attachments") or []]
        self.deliveries.append(Delivery(conversation.id, text, proc.pid, self.world.now, attachments=references))
        proc.notes.setdefault("sent", []).append(len(self.deliveries) - 1)
        if self.gateway:
            data: dict[str, Any] = {
                "isEcho": True,
                "sender": {"id": "customer", "type": body.get("authorType", "user")},
                "text": text,
            }
            if references:
                data["attachments"] = [
                    {"id": r, "fileName": self.uploads[r].file_name if r in self.uploads else r} for r in references
                ]
            self.emit(conversation, "MESSAGE", data, kind="echo", timeline=False, bus=False)
        if not conversation.live:
            self._start_interaction(conversation)
        return 201, {"messageId": self._next("msg-")}

    def _customer_leaves(self, conversation: Conversation) -> None:
        if not conversation.live:
            return
        conversation.live = False
        conversation.interaction += 1  # the scripted agent's next steps no longer apply
        if self.gateway:
            self.emit(
                conversation,
                "MEMBERS_CHANGED",
                {"memberType": "user", "change": "left", "id": "customer"},
                kind="user-left",
                timeline=False,
                bus=False,
            )
        if conversation.agent:
            self._agent_event(conversation, "left", conversation.agent)
            conversation.agent = None

    # ---- interactions and their scripted agents -----------------------------------------------------
    def _start_interaction(self, conversation: Conversation) -> None:
        conversation.interaction += 1
        conversation.live = True
        generation = conversation.interaction
        draw = self.world.draw
        script: list[tuple[float, str]] = [(0.5 + draw(3, "queue delay"), "queued")]
        if draw(4, "agent answers") != 0:
            script.append((1.0 + draw(20, "agent delay"), "joined"))
            for _ in range(draw(3, "agent messages")):
                if self.gateway and draw(2, "typing"):
                    script.append((0.5, "typing"))
                script.append((0.5 + draw(10, "reply delay"), "text"))
            if draw(4, "transfer") == 1:
                script += [(1.0, "transfer"), (0.5, "queued"), (0.5, "left"), (2.0 + draw(5, "delay"), "joined")]
            if draw(3, "agent leaves") == 1:
                script.append((1.0 + draw(10, "delay"), "end"))
        at = 0.0
        for delay, what in script:
            at += delay
            self.world.at(at, functools.partial(self._scripted, conversation, generation, what))

    def _scripted(self, conversation: Conversation, generation: int, what: str) -> None:
        if conversation.interaction != generation:
            return
        agent = conversation.agent
        if what == "queued":
            self.emit(conversation, "QUEUED", {"queueId": "101", "queueName": "Support"})
        elif what == "joined":
            conversation.agent = f"agent-{self.world.draw(3, 'which agent') + 1}"
            self._agent_event(conversation, "joined", conversation.agent)
        elif what == "left" and agent:
            self._agent_event(conversation, "left", agent)
        elif what == "transfer":
            self.emit(conversation, "TRANSFER", {})
        elif what == "typing" and agent:
            self.emit(
                conversation,
                "ACTIVITY",
                {"name": "typing", "value": {"users": [{"id": agent, "type": "agent"}]}},
                kind="typing",
                timeline=False,
            )
        elif what == "text" and agent:
            text = f"reply {self._next('r')}"
            if self.gateway:
                # 8x8 writes the sender's type in more than one case (GATEWAY.md's own example has "").
                sender = {"id": agent, "type": ("agent", "Agent", "AGENT")[self.world.draw(3, "sender type")]}
                data = {"isEcho": False, "sender": sender, "text": text}
                files = self._agent_files(conversation) if self.world.draw(3, "agent sends files") == 1 else []
                if files:
                    data["attachments"] = [
                        {
                            "id": f,
                            "type": "image",
                            "fileName": self.files[f].file_name,
                            "preSignedUrl": f"https://{FILE_HOST}/{f}?expires={self.files[f].url_expires_at:.0f}",
                        }
                        for f in files
                    ]
                self.emit(conversation, "MESSAGE", data, files=files)
            else:
                self.emit(
                    conversation,
                    "TEXT",
                    {"agentId": agent, "agentName": agent.title(), "message": text},
                    message_type="AGENT",
                )
        elif what == "end" and agent:
            self._agent_event(conversation, "left", agent)
            conversation.agent = None
            conversation.live = False

    def _agent_files(self, conversation: Conversation) -> list[str]:
        """One or two files; each URL lives a while, briefly, or is expired on arrival; now and then 8x8 no longer
        has the file by the time it is fetched."""
        draw = self.world.draw
        made = []
        for _ in range(1 + draw(2, "agent files")):
            file_id = self._next("file-")
            lifetime = (3600.0, 20.0, 0.0)[draw(3, "file URL lifetime")]
            body = f"agent file {file_id} of {conversation.id}".encode()
            gone = draw(12, "file gone") == 0
            self.files[file_id] = AgentFile(conversation.id, f"{file_id}.png", body, self.world.now + lifetime, gone)
            made.append(file_id)
        return made

    def file_get(self, url: str, **_: Any) -> requests.Response:
        """GET of an agent file's pre-signed URL (the copier's `requests.get`, no credentials)."""
        fault = self.world.step(f"8x8 files GET {url}", "contact_center", ("refused", "500", "timeout-before"), 0.15)
        if fault == "refused":
            raise requests.ConnectionError("Connection refused (NewConnectionError)")
        if fault == "timeout-before":
            self.world.sleep(5.0)
            raise requests.ReadTimeout("read timed out (sim)")
        if fault == "500":
            return _response(500, {"message": "injected"})
        parts = urlsplit(url)
        found = self.files.get(parts.path.lstrip("/"))
        if parts.hostname != FILE_HOST or found is None or found.gone:
            return _response(404, {"message": "no such file"})
        if self.world.now >= found.url_expires_at:
            return _response(403, {"message": "Request has expired"})
        return _stream(found.body)

    def _agent_event(self, conversation: Conversation, change: str, agent: str) -> None:
        if self.gateway:
            self.emit(conversation, "MEMBERS_CHANGED", {"memberType": "agent", "change": change, "id": agent})
        else:
            kind = "AGENT_JOINED" if change == "joined" else "AGENT_LEFT"
            self.emit(conversation, kind, {"agentId": agent, "agentName": agent.title()})

    # ---- webhooks -----------------------------------------------------------------------------------
    def emit(
        self,
        conversation: Conversation,
        event_type: str,
        data: dict[str, Any],
        *,
        kind: str = "",
        timeline: bool = True,
        bus: bool = True,
        message_type: str = "SYSTEM",
        files: list[str] | None = None,
    ) -> None:
        conversation.last_ts = max(conversation.last_ts + 1, self.clock_ms())
        payload: dict[str, Any]
        if self.gateway:
            payload = {
                "eventType": event_type,
                "conversationId": conversation.id,
                "timestamp": conversation.last_ts,
                "data": data,
            }
        else:
            payload = {
                "eventType": event_type,
                "messageType": message_type,
                "conversationId": conversation.id,
                **data,
                "timestamp": conversation.last_ts,
            }
        event = Emitted(
            self._next("ev-"),
            conversation.id,
            kind or event_type,
            json.dumps(payload, separators=(",", ":")).encode(),
            timeline,
            bus,
            files=list(files or ()),
        )
        self.emitted.append(event)
        self.world.log(f"   8x8: {event.event_id} {event.kind} on {conversation.id}")
        self.world.at(self.world.draw(4, "delivery delay") * 0.7, lambda: self._deliver(event, 0))

    def _deliver(self, event: Emitted, attempt: int) -> None:
        assert self.runtime is not None
        headers = self.signer.headers(event.body, event_id=event.event_id, retry=attempt, tt=self.clock_ms())
        forwarded = {**headers, "content-type": "application/json"}
        started = self.world.now

        def done(proc: Proc) -> None:
            status = 502
            if proc.outcome == "throttled":
                status = 429
            elif proc.outcome == "ok" and isinstance(proc.result, dict):
                status = int(proc.result.get("statusCode", 502))
            if self.world.now - started > 29.0:
                status = 504  # API Gateway gave up waiting
            event.statuses.append(status)
            if status == 200 and "unknown conversation" in str(proc.result.get("body")):
                event.early = True
            if proc.faults:
                event.faulted_deliveries += 1
            self.on_delivery_done(event, proc, status)
            lost = 200 <= status < 300 and self.world.chance(self.world.faults.contact_center, "webhook answer lost")
            if lost:
                event.faulted_deliveries += 1
                self.world.faults_injected += 1
                self.world.log(f"   8x8: answer to {event.event_id} lost  !! lost")
            if 200 <= status < 300:
                event.answered_2xx = True
            if 200 <= status < 300 and not lost:
                if self.world.chance(self.world.faults.contact_center, "8x8 redelivers"):
                    self.world.faults_injected += 1
                    self.world.log(f"   8x8: {event.event_id} will be delivered again  !! redelivery")
                    self.world.at(self.world.draw(30, "redelivery delay"), lambda: self._deliver(event, attempt + 1))
                return
            if attempt + 1 >= MAX_DELIVERY_ATTEMPTS:
                event.given_up = True
                self.world.log(f"   8x8: gave up on {event.event_id}")
                return
            self.world.at(min(300.0, 2.0**attempt), lambda: self._deliver(event, attempt + 1))

        self.runtime.invoke(
            "webhook_intake", webhook_event(forwarded, event.body), done, name=f"webhook {event.event_id}"
        )


class _File:
    """A file's bytes as 8x8 serves them: streamed (the copier reads `response.raw`)."""

    def __init__(self, body: bytes) -> None:
        self.body = body


class _Raw(io.BytesIO):
    decode_content = False


def _stream(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.raw = _Raw(body)
    response.headers = CaseInsensitiveDict({"Content-Type": "image/png", "Content-Length": str(len(body))})
    return response


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    if isinstance(body, _File):
        return _stream(body.body)
    response = requests.Response()
    response.status_code = status
    response._content = b"" if body is None else json.dumps(body).encode()
    response._content_consumed = True  # type: ignore[attr-defined]  # read whole: closing it closes nothing more
    response.raw = _Raw(response._content)
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})
    response.encoding = "utf-8"
    return response


class ContactCenterSession:
    """What the 8x8 clients call `session.request` on."""

    def __init__(self, model: ContactCenterModel) -> None:
        self.model = model
        self.headers: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        return self.model.request(method, url, **kwargs)


SIGNER_TENANT = TENANT_ID
SIGNER_CUSTOMER = CUSTOMER_ID
