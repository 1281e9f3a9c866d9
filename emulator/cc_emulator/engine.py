"""The simulated contact center, independent of any HTTP surface.

State (tenant, tokens, webhooks, channels, conversations, attachments, queues, agents, messages)
lives here. The routing simulation (queues, offers, scripted and manual agents) is `routing.Router`;
webhook events in each API's dialect are `events.Notifier`. HTTP surfaces (`http_v2`, `http_gateway`)
translate requests into calls on `Engine` and its results back into their wire shapes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
import time
from typing import Any, TypeVar
from urllib.parse import quote

from .config import AgentConfig, EmulatorConfig, QueueConfig
from .delivery import DeliveryRecord, DeliveryWorker, Event, now_ms
from .events import Notifier
from .faults import FaultManager
from .model import (
    EXTERNAL_AUTHOR_TYPES,
    GATEWAY_VERSION,
    MAX_CUSTOMER_PROPS,
    MAX_HISTORY_MESSAGES,
    V2_VERSION,
    Agent,
    Attachment,
    Channel,
    Conversation,
    EngineError,
    Interaction,
    InteractionState,
    InvalidState,
    Message,
    NotFound,
    Queue,
    RequestRecord,
    Validation,
    ValidationFailed,
    Webhook,
    gateway_user,
    iso,
)
from .routing import Router, Scheduler
from .signing import KeyStore, b64url

# Re-exported: surfaces and tests import these from here.
__all__ = [
    "EXTERNAL_AUTHOR_TYPES",
    "GATEWAY_VERSION",
    "V2_VERSION",
    "Agent",
    "Attachment",
    "Channel",
    "Conversation",
    "Engine",
    "EngineError",
    "Interaction",
    "InvalidState",
    "Message",
    "NotFound",
    "Queue",
    "Scheduler",
    "TokenStore",
    "Validation",
    "ValidationFailed",
    "Webhook",
    "iso",
]

API_VERSIONS = {"chat-api-v2": V2_VERSION, "chat-gateway-v1": GATEWAY_VERSION}
T = TypeVar("T")


class TokenStore:
    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, int]:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.ttl
        return token, self.ttl

    def status(self, token: str) -> str:
        """ "valid", "expired" or "unknown"."""
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return "unknown"
        return "valid" if time.monotonic() < expiry else "expired"

    def valid(self, token: str) -> bool:
        return self.status(token) == "valid"

    def expire_all(self) -> int:
        now = time.monotonic()
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = now
            return len(self._tokens)


class Engine:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.keys = KeyStore()
        self.faults = FaultManager()
        for spec in config.faults:
            self.faults.add_from_dict(dict(spec.__dict__))
        self.tokens = TokenStore(config.token_ttl)
        self.delivery = DeliveryWorker(self.keys, config, self.faults)
        self.notify = Notifier(self)
        self.router = Router(self)
        self.scheduler = self.router.scheduler
        self.public_base_url = config.public_base_url or f"http://{config.host}:{config.port}"
        self._url_secret = secrets.token_bytes(32)
        self._ids = itertools.count(1)
        self._request_seq = itertools.count(1)
        self.requests: list[RequestRecord] = []
        self._init_state()

    def _init_state(self) -> None:
        self.webhooks: dict[str, Webhook] = {}
        self.channels: dict[str, Channel] = {}
        self.conversations: dict[str, Conversation] = {}
        self.queues: dict[str, Queue] = {q.id: Queue(q.id, q.name) for q in self.config.queues}
        self.agents: dict[str, Agent] = {}
        for a in self.config.agents:
            self.add_agent(a)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.delivery.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.delivery.stop()

    def reset(self) -> None:
        """Forget all runtime state; keep keys, config topology, settings and issued tokens."""
        with self.lock:
            self.scheduler.clear()
            self.delivery.reset()
            self.faults.clear()
            self.requests.clear()
            self._init_state()

    def new_id(self) -> str:
        return str(next(self._ids))

    _new_id = new_id

    def send_event(self, event: Event) -> None:
        self.delivery.submit(event)

    # -- tenant / auth -----------------------------------------------------------------------

    def check_credentials(self, key: str, secret: str) -> bool:
        return secrets.compare_digest(key, self.config.api_key) and secrets.compare_digest(
            secret, self.config.api_secret
        )

    def check_api_key(self, key: str) -> bool:
        return secrets.compare_digest(key.encode("utf-8"), self.config.api_key.encode("utf-8"))

    def log_request(self, op: str, method: str, path: str, status: int | None, fault: str | None, surface: str) -> None:
        with self.lock:
            self.requests.append(
                RequestRecord(next(self._request_seq), op, method, path, status, fault, time.time(), surface)
            )

    def request_counts(self) -> dict[str, int]:
        with self.lock:
            counts: dict[str, int] = {}
            for r in self.requests:
                counts[r.op] = counts.get(r.op, 0) + 1
            return counts

    # -- settings ----------------------------------------------------------------------------

    SETTINGS = {
        "gatewayReopen": "gateway_reopen",
        "gatewayEchoIsEcho": "gateway_echo_is_echo",
        "gatewayRemovedAcceptsMessages": "gateway_removed_accepts_messages",
        "gatewayScripts": "gateway_scripts",
        "attachmentUrlTtl": "attachment_url_ttl",
    }

    def settings(self) -> dict[str, Any]:
        with self.lock:
            result = {name: getattr(self.config, attr) for name, attr in self.SETTINGS.items()}
            result["agentWrapUpIdle"] = self.config.timings.agent_wrap_up_idle
            return result

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change run-time settings (camelCase keys as in `settings()`); unknown keys are an error."""
        unknown = set(changes) - set(self.SETTINGS) - {"agentWrapUpIdle"}
        if unknown:
            raise ValueError(
                f"unknown settings {sorted(unknown)}; known: {sorted([*self.SETTINGS, 'agentWrapUpIdle'])}"
            )
        reopen = changes.get("gatewayReopen")
        if reopen is not None and reopen not in ("requeue", "needs_assignment"):
            raise ValueError("gatewayReopen must be 'requeue' or 'needs_assignment'")
        with self.lock:
            for name, value in changes.items():
                if name == "agentWrapUpIdle":
                    self.config.timings.agent_wrap_up_idle = float(value)
                elif name in ("gatewayEchoIsEcho", "gatewayRemovedAcceptsMessages"):
                    if not isinstance(value, bool):
                        raise ValueError(f"{name} must be true or false")
                    setattr(self.config, self.SETTINGS[name], value)
                elif name == "gatewayScripts":
                    self.config.gateway_scripts = {str(k): str(v) for k, v in dict(value).items()}
                elif name == "attachmentUrlTtl":
                    self.config.attachment_url_ttl = int(value)
                else:
                    setattr(self.config, self.SETTINGS[name], value)
        return self.settings()

    # -- topology ----------------------------------------------------------------------------

    def add_queue(self, queue: QueueConfig) -> Queue:
        with self.lock:
            q = self.queues.setdefault(queue.id, Queue(queue.id, queue.name))
            return q

    def add_agent(self, cfg: AgentConfig) -> Agent:
        with self.lock:
            return self.router.add_agent(cfg)

    def set_agent_available(self, agent_id: str, available: bool) -> Agent:
        with self.lock:
            agent = self.router.agent(agent_id)
            self.router.set_available(agent, available)
            return agent

    # -- webhooks ----------------------------------------------------------------------------

    def create_webhook(self, name: str, uri: str, version: str = V2_VERSION) -> Webhook:
        with self.lock:
            hook = Webhook(self.new_id(), name, uri, version)
            self.webhooks[hook.id] = hook
        self.send_event(
            Event.build(
                "WEB_HOOK_VERIFY",
                uri,
                {"notificationVersion": version, "eventType": "WEB_HOOK_VERIFY"},
                webhook_id=hook.id,
            )
        )
        return hook

    def _lookup(self, table: dict[str, T], kind: str, key: str) -> T:
        with self.lock:
            found = table.get(key)
            if found is None:
                raise NotFound(kind, key)
            return found

    def _rows(self, table: dict[str, T]) -> list[T]:
        """A copy of a table's rows, to read without the lock."""
        with self.lock:
            return list(table.values())

    def get_webhook(self, webhook_id: str) -> Webhook:
        return self._lookup(self.webhooks, "WebHook", webhook_id)

    def list_webhooks(self) -> list[Webhook]:
        return self._rows(self.webhooks)

    def update_webhook(self, webhook_id: str, name: str, uri: str, version: str) -> Webhook:
        with self.lock:
            hook = self.get_webhook(webhook_id)
            hook.name, hook.uri, hook.version = name, uri, version
            return hook

    def delete_webhook(self, webhook_id: str) -> None:
        with self.lock:
            self.get_webhook(webhook_id)
            in_use = [c.id for c in self.channels.values() if c.webhook_id == webhook_id]
            if in_use:
                raise ValidationFailed(
                    [Validation("webHookId", webhook_id, "webhook_in_use", f"WebHook used by channels {in_use}")]
                )
            del self.webhooks[webhook_id]

    def verify_webhook_uri(self, uri: str, version: str) -> DeliveryRecord:
        """Synchronous WEB_HOOK_VERIFY to `uri`, as the verify endpoint does."""
        event = Event.build("WEB_HOOK_VERIFY", uri, {"notificationVersion": version, "eventType": "WEB_HOOK_VERIFY"})
        record = self.delivery.send_once(event)
        self.delivery.log(record)
        return record

    # -- channels ----------------------------------------------------------------------------

    def _check_channel_refs(self, webhook_id: str, queue_id: str) -> None:
        problems = []
        if webhook_id not in self.webhooks:
            problems.append(
                Validation("webHookId", webhook_id, "invalid_webhook", f"WebHook ID {webhook_id} is invalid.")
            )
        if queue_id not in self.queues:
            problems.append(
                Validation("routingOptions.id", queue_id, "invalid_queue", f"Queue ID {queue_id} is invalid.")
            )
        if problems:
            raise ValidationFailed(problems)

    def create_channel(self, name: str, webhook_id: str, queue_id: str, channel_type: str = "ChatAPI") -> Channel:
        with self.lock:
            self._check_channel_refs(webhook_id, queue_id)
            channel = Channel(self.new_id(), name, webhook_id, queue_id, channel_type)
            self.channels[channel.id] = channel
            return channel

    def get_channel(self, channel_id: str) -> Channel:
        return self._lookup(self.channels, "Channel", channel_id)

    def list_channels(self) -> list[Channel]:
        return self._rows(self.channels)

    def update_channel(
        self, channel_id: str, name: str, webhook_id: str, queue_id: str, channel_type: str | None = None
    ) -> Channel:
        with self.lock:
            channel = self.get_channel(channel_id)
            self._check_channel_refs(webhook_id, queue_id)
            channel.name, channel.webhook_id, channel.queue_id = name, webhook_id, queue_id
            if channel_type:
                channel.type = channel_type
            return channel

    def delete_channel(self, channel_id: str) -> None:
        with self.lock:
            self.get_channel(channel_id)
            del self.channels[channel_id]

    def provision(
        self, webhook_uri: str, queue_id: str | None = None, name: str = "casebridge", version: str = V2_VERSION
    ) -> tuple[str, str]:
        """Webhook + channel for `webhook_uri` on `queue_id` (default: first queue).

        `version` is the webhook's event dialect: "v2.0" (Chat API v2) or "Chat Gateway v1.0"; the API
        names "chat-api-v2" / "chat-gateway-v1" are accepted too.
        """
        version = API_VERSIONS.get(version, version)
        if version not in (V2_VERSION, GATEWAY_VERSION, "v1.0"):
            raise ValueError(f"unknown webhook version {version!r}")
        with self.lock:
            qid = queue_id or next(iter(self.queues))
        hook = self.create_webhook(f"{name}-webhook", webhook_uri, version)
        channel = self.create_channel(f"{name}-channel", hook.id, qid)
        return hook.id, channel.id

    # -- conversations -----------------------------------------------------------------------

    def get_conversation(self, conversation_id: str) -> Conversation:
        return self._lookup(self.conversations, "Conversation", conversation_id)

    def list_conversations(self, channel_id: str | None = None, status: str | None = None) -> list[Conversation]:
        convs = self._rows(self.conversations)
        if channel_id:
            convs = [c for c in convs if c.channel_id == channel_id]
        if status and status != "all":
            convs = [c for c in convs if c.status == status]
        return convs

    def _routing_queue(self, channel: Channel, assignment: tuple[str, str] | None) -> tuple[str, str | None]:
        """(queue id, script id) for a Gateway assignment; the channel's queue when there is none."""
        if assignment is None:
            return channel.queue_id, None
        kind, target = assignment
        if kind == "script":
            return self.config.gateway_scripts.get(target, channel.queue_id), target
        if target not in self.queues:
            raise NotFound("Queue", target)
        return target, None

    def create_conversation(
        self,
        channel_id: str,
        customer: dict[str, str],
        history: list[dict[str, Any]],
        additional_properties: list[dict[str, str]] | None = None,
        assignment: tuple[str, str] | None = None,
    ) -> Conversation:
        """History items: {"type" or "authorType": user|bot, "text", "attachments"?, "cards"?}."""
        props = list(additional_properties or [])
        problems = []
        if len(customer) > MAX_CUSTOMER_PROPS or len(props) > MAX_CUSTOMER_PROPS:
            problems.append(
                Validation(
                    "customer",
                    str(max(len(customer), len(props))),
                    "max_properties",
                    f"customer has more than {MAX_CUSTOMER_PROPS} properties",
                )
            )
        if len(history) > MAX_HISTORY_MESSAGES:
            problems.append(
                Validation(
                    "history.messages",
                    str(len(history)),
                    "max_size",
                    f"history has more than {MAX_HISTORY_MESSAGES} messages",
                )
            )
        with self.lock:
            channel = self.channels.get(channel_id)
            if channel is None:
                problems.append(
                    Validation("channelId", channel_id, "invalid_channel", f"Channel ID {channel_id} is invalid.")
                )
            if problems:
                raise ValidationFailed(problems)
            assert channel is not None
            try:
                queue_id, script_id = self._routing_queue(channel, assignment)
            except NotFound as exc:
                raise ValidationFailed(
                    [
                        Validation(
                            "assignment.id", exc.resource_id, "invalid_queue", f"Queue ID {exc.resource_id} is invalid."
                        )
                    ]
                ) from exc
            conv = Conversation(b64url(secrets.token_bytes(16)), channel.id, dict(customer), time.time(), queue_id)
            conv.additional_properties = props
            conv.script_id = script_id
            self.conversations[conv.id] = conv
            self.notify.conversation_update(conv, "created")
            inter = self.router.start_interaction(conv, queue_id)
            for h in history:
                author = str(h.get("authorType") or h.get("type") or "user")
                sender = conv.customer_participant_id if author == "user" else "bot"
                conv.messages.append(
                    Message(
                        self.new_id(),
                        inter.id,
                        author,
                        sender,
                        str(h.get("text") or ""),
                        now_ms(),
                        history=True,
                        cards=list(h.get("cards") or []),
                    )
                )
            self.notify.conversation_update(conv, "active")
            self.router.enqueue(conv, inter)
            return conv

    def post_message(
        self,
        conversation_id: str,
        text: str,
        author_type: str = "user",
        attachments: list[str] | None = None,
        cards: list[dict[str, Any]] | None = None,
        reopen: str | None = None,
    ) -> Message:
        """A user or bot message. On an idle conversation, `reopen` decides: "requeue" (a new
        interaction on the last queue) or "needs_assignment" (stored until PUT/PATCH assigns it);
        None = the Gateway setting for Gateway-dialect conversations, "requeue" otherwise."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            for att_id in attachments or []:
                if att_id not in conv.attachments:
                    raise ValidationFailed(
                        [Validation("attachments.id", att_id, "invalid_attachment", f"Attachment {att_id} not found.")]
                    )
            if reopen is None:
                reopen = self.config.gateway_reopen if self._gateway_dialect(conv) else "requeue"
            inter = conv.current
            reopening = inter is None and reopen == "requeue"
            if reopening:
                # Reopen: a new interaction on the last queue, the next agent sees everything.
                conv.customer_left = False
                inter = self.router.start_interaction(conv, conv.last_queue_id)
            sender = conv.customer_participant_id if author_type == "user" else "bot"
            msg = Message(
                self.new_id(),
                inter.id if inter else "",
                author_type,
                sender,
                text,
                now_ms(),
                attachments=list(attachments or []),
                cards=list(cards or []),
            )
            conv.messages.append(msg)
            self.notify.message(conv, msg)
            if reopening and inter is not None:
                self._claim_waiting_messages(conv, inter)
                self.notify.conversation_update(conv)
                self.router.enqueue(conv, inter)
            elif inter is not None:
                self.router.customer_message(conv, inter, msg)
            return msg

    def _gateway_dialect(self, conv: Conversation) -> bool:
        channel = self.channels.get(conv.channel_id)
        hook = self.webhooks.get(channel.webhook_id) if channel else None
        return hook is not None and hook.gateway

    @staticmethod
    def _claim_waiting_messages(conv: Conversation, inter: Interaction) -> None:
        """Messages stored while idle (needs_assignment) belong to the interaction that serves them."""
        for m in conv.messages:
            if m.interaction_id == "":
                m.interaction_id = inter.id

    def update_conversation(
        self,
        conversation_id: str,
        channel_id: str | None = None,
        customer: dict[str, str] | None = None,
        additional_properties: list[dict[str, str]] | None = None,
        assignment: tuple[str, str] | None = None,
    ) -> Conversation:
        """Gateway PUT/PATCH. An assignment on an idle conversation starts a new interaction there;
        on a waiting one it moves it; while an agent is assigned it only becomes the queue of the
        next reopen (the docs are silent on that case)."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            if channel_id is not None and channel_id != conv.channel_id:
                self.get_channel(channel_id)
                conv.channel_id = channel_id
            if customer is not None:
                conv.customer = dict(customer)
                conv.additional_properties = list(additional_properties or [])
            if assignment is None:
                self.notify.conversation_update(conv)
                return conv
            channel = self.get_channel(conv.channel_id)
            queue_id, script_id = self._routing_queue(channel, assignment)
            conv.script_id = script_id
            inter = conv.current
            if inter is None:
                conv.customer_left = False
                inter = self.router.start_interaction(conv, queue_id)
                self._claim_waiting_messages(conv, inter)
                self.notify.conversation_update(conv)
                self.router.enqueue(conv, inter)
            elif inter.state in (InteractionState.QUEUED, InteractionState.OFFERED):
                self.notify.conversation_update(conv)
                self.router.requeue(conv, inter, queue_id)
            else:
                conv.last_queue_id = queue_id
                self.notify.conversation_update(conv)
            return conv

    def customer_leaves(self, conversation_id: str, announce: bool = False) -> None:
        """The customer leaves: the live interaction ends (AGENT_LEFT if an agent had joined).
        `announce` (Gateway) also sends MEMBERS_CHANGED user left."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            already = conv.customer_left
            conv.customer_left = True
            if announce and not already:
                self.notify.user_left(conv)
            inter = conv.current
            if inter is not None:
                self.router.end(conv, inter)

    def messages(self, conversation_id: str, interaction_id: str | None = None) -> list[Message]:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            return [m for m in conv.messages if interaction_id is None or m.interaction_id == interaction_id]

    def participants(self, conversation_id: str) -> list[dict[str, Any]]:
        """{id, type, language, removed}; an agent is removed once it is no longer assigned."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            lang = conv.customer.get("language", "en")
            cur = conv.current
            result: list[dict[str, Any]] = [
                {"id": conv.customer_participant_id, "type": "user", "language": lang, "removed": conv.customer_left}
            ]
            if any(m.author_type == "bot" for m in conv.messages):
                result.append({"id": "bot", "type": "bot", "language": lang, "removed": False})
            seen: set[str] = set()
            for inter in conv.interactions:
                for agent_id in inter.agents:
                    if agent_id not in seen:
                        seen.add(agent_id)
                        removed = cur is None or cur.assigned_agent != agent_id
                        result.append({"id": agent_id, "type": "agent", "language": lang, "removed": removed})
            return result

    def user_typing(self, conversation_id: str, author_type: str) -> None:
        """The integration's user or bot is typing: shown to the agent, kept in the transcript."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            conv.user_typing.append({"authorType": author_type, "timestamp": now_ms()})

    # -- attachments -------------------------------------------------------------------------

    def add_attachment(
        self, conv: Conversation, filename: str, content_type: str, data: bytes, author_type: str = "user"
    ) -> Attachment:
        with self.lock:
            att = Attachment(
                b64url(secrets.token_bytes(48)), conv.id, filename, content_type, data, time.time(), author_type
            )
            conv.attachments[att.id] = att
            return att

    def get_attachment(self, conversation_id: str, attachment_id: str) -> Attachment:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            att = conv.attachments.get(attachment_id)
            if att is None:
                raise NotFound("Attachment", attachment_id)
            return att

    def _url_signature(self, attachment_id: str, expires: int) -> str:
        mac = hmac.new(self._url_secret, f"{attachment_id}:{expires}".encode(), hashlib.sha256).digest()
        return b64url(mac)

    def presigned_url(self, att: Attachment) -> str:
        """A storage-style URL that works without the API key until it expires."""
        expires = int(time.time()) + self.config.attachment_url_ttl
        sig = self._url_signature(att.id, expires)
        return (
            f"{self.public_base_url}/_storage/attachments/{att.id}/{quote(att.filename)}"
            f"?expires={expires}&signature={sig}"
        )

    def presigned_attachment(self, attachment_id: str, expires: str, signature: str) -> Attachment | None:
        """The attachment if the URL's signature is right and it has not expired, else None."""
        try:
            exp = int(expires)
        except ValueError:
            return None
        if exp < time.time() or not hmac.compare_digest(self._url_signature(attachment_id, exp), signature):
            return None
        with self.lock:
            for conv in self.conversations.values():
                if attachment_id in conv.attachments:
                    return conv.attachments[attachment_id]
        return None

    # -- agents (control) --------------------------------------------------------------------

    def agent_accept(self, agent_id: str, conversation_id: str | None = None) -> Conversation:
        with self.lock:
            return self.router.accept(self.router.agent(agent_id), conversation_id)

    def agent_reply(
        self,
        agent_id: str,
        text: str,
        attachments: list[tuple[str, str, bytes]] | None = None,
        cards: list[dict[str, Any]] | None = None,
    ) -> Message:
        """Attachments as (filename, content type, bytes)."""
        with self.lock:
            return self.router.reply(self.router.agent(agent_id), text, attachments or [], cards or [])

    def agent_typing(self, agent_id: str, typing: bool) -> Conversation:
        with self.lock:
            return self.router.typing(self.router.agent(agent_id), typing)

    def agent_transfer(self, agent_id: str, queue_id: str) -> Conversation:
        with self.lock:
            return self.router.transfer(self.router.agent(agent_id), queue_id)

    def agent_leave(self, agent_id: str) -> Conversation:
        with self.lock:
            return self.router.leave(self.router.agent(agent_id))

    # -- inspection --------------------------------------------------------------------------

    def transcript(self, conversation_id: str) -> dict[str, Any]:
        """The conversation as an agent sees it: history plus every message, across interactions."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            return {
                "id": conv.id,
                "channelId": conv.channel_id,
                # What the agent sees: every customer field, Gateway additionalProperties flattened in.
                "customer": {**dict(conv.customer), **{p["key"]: p["value"] for p in conv.additional_properties}},
                "user": gateway_user(conv),
                "status": conv.status,
                "customerLeft": conv.customer_left,
                "lastQueueId": conv.last_queue_id,
                "state": conv.gateway_state,
                "assignment": conv.assignment(),
                "userTyping": list(conv.user_typing),
                "attachments": [
                    {"id": a.id, "filename": a.filename, "contentType": a.content_type, "size": len(a.data)}
                    for a in conv.attachments.values()
                ],
                "interactions": [
                    {
                        "id": i.id,
                        "queueId": i.queue_id,
                        "state": i.state,
                        "agentId": i.agent_id,
                        "agents": list(i.agents),
                        "transfers": list(i.transfers),
                        "startTime": iso(i.start),
                        "endTime": iso(i.end) if i.end else None,
                    }
                    for i in conv.interactions
                ],
                "transcript": [
                    {
                        "id": m.id,
                        "interactionId": m.interaction_id,
                        "authorType": m.author_type,
                        "senderId": m.sender_id,
                        "text": m.text,
                        "timestamp": m.timestamp,
                        "history": m.history,
                        "attachments": list(m.attachments),
                        "cards": list(m.cards),
                    }
                    for m in conv.messages
                ],
            }

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "tenantId": self.config.tenant_id,
                "customerId": self.config.customer_id,
                "region": self.config.region,
                "activeKid": self.keys.active.kid,
                "kids": self.keys.kids(),
                "webhooks": [h.__dict__.copy() for h in self.webhooks.values()],
                "channels": [
                    {"id": c.id, "name": c.name, "webhook_id": c.webhook_id, "queue_id": c.queue_id}
                    for c in self.channels.values()
                ],
                "queues": [{"id": q.id, "name": q.name, "waiting": list(q.waiting)} for q in self.queues.values()],
                "agents": [
                    {
                        "id": a.id,
                        "name": a.name,
                        "queues": list(a.queues),
                        "mode": a.mode,
                        "available": a.available,
                        "state": a.state,
                        "typing": a.typing,
                        "conversationId": a.conversation_id,
                    }
                    for a in self.agents.values()
                ],
                "conversations": [
                    {
                        "id": c.id,
                        "status": c.status,
                        "state": c.gateway_state,
                        "channelId": c.channel_id,
                        "interactions": len(c.interactions),
                    }
                    for c in self.conversations.values()
                ],
                "settings": self.settings(),
                "faults": self.faults.list(),
                "pendingDeliveries": self.delivery.pending(),
            }

    def wait_quiet(self, timeout: float = 5.0) -> None:
        """Wait until no agent action is scheduled and no delivery is pending."""
        deadline = time.monotonic() + timeout
        while self.scheduler.busy() or self.delivery.pending():
            if time.monotonic() > deadline:
                raise TimeoutError(f"emulator still busy after {timeout}s")
            time.sleep(0.01)
