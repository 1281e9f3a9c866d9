"""The simulated contact center, independent of any HTTP surface.

State (tenant, tokens, webhooks, channels, conversations, interactions, queues, agents, messages)
lives here; HTTP surfaces (Chat API v2 today, Chat Gateway v1 later) translate requests into
calls on `Engine` and its results back into their wire shapes.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import AgentConfig, EmulatorConfig, QueueConfig, ScriptConfig
from .delivery import DeliveryRecord, DeliveryWorker, Event, now_ms
from .faults import FaultManager
from .signing import KeyStore, b64url

MAX_CUSTOMER_PROPS = 30
MAX_HISTORY_MESSAGES = 200
EXTERNAL_AUTHOR_TYPES = ("user", "bot")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- errors ----------------------------------------------------------------------------------


@dataclass
class Validation:
    field: str
    value: str
    code: str
    message: str


class EngineError(Exception):
    """Base for errors that a surface maps to an HTTP answer."""


class NotFound(EngineError):
    def __init__(self, resource_type: str, resource_id: str) -> None:
        super().__init__(f"{resource_type} {resource_id} not found")
        self.resource_type = resource_type
        self.resource_id = resource_id


class ValidationFailed(EngineError):
    def __init__(self, validations: list[Validation]) -> None:
        super().__init__("; ".join(v.message for v in validations))
        self.validations = validations


class InvalidState(EngineError):
    """A control action that does not fit the current state (e.g. a busy agent accepting)."""


# -- model -----------------------------------------------------------------------------------


@dataclass
class Webhook:
    id: str
    name: str
    uri: str
    version: str


@dataclass
class Channel:
    id: str
    name: str
    webhook_id: str
    queue_id: str


@dataclass
class Message:
    id: str
    interaction_id: str
    author_type: str  # user | bot | agent | system
    sender_id: str
    text: str
    timestamp: int
    history: bool = False


@dataclass
class Interaction:
    id: str
    queue_id: str
    start: float
    state: str = "queued"  # queued | offered | assigned | ended
    agent_id: str | None = None
    end: float | None = None
    transfers: list[dict[str, str]] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)


@dataclass
class Conversation:
    id: str
    channel_id: str
    customer: dict[str, str]
    created: float
    last_queue_id: str
    messages: list[Message] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    customer_left: bool = False

    @property
    def current(self) -> Interaction | None:
        if self.interactions and self.interactions[-1].state != "ended":
            return self.interactions[-1]
        return None

    @property
    def status(self) -> str:
        cur = self.current
        if cur is None:
            return "created"
        return "handling" if cur.state == "assigned" else "pending"

    @property
    def customer_participant_id(self) -> str:
        return self.customer.get("customerId") or "customer"


@dataclass
class Queue:
    id: str
    name: str
    waiting: list[str] = field(default_factory=list)  # conversation ids, FIFO


@dataclass
class Agent:
    id: str
    name: str
    queues: list[str]
    mode: str
    script: ScriptConfig
    conversation_id: str | None = None
    handled: int = 0  # customer messages reacted to in the current assignment
    available: bool = True

    @property
    def free(self) -> bool:
        return self.available and self.conversation_id is None


@dataclass
class RequestRecord:
    seq: int
    op: str
    method: str
    path: str
    status: int | None
    fault: str | None
    time: float
    surface: str = "v2"


# -- helpers ---------------------------------------------------------------------------------


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


class Scheduler:
    """Runs delayed agent actions on one thread; reset() drops everything pending."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stopping = False
        self._running = 0
        self._thread = threading.Thread(target=self._run, name="cc-emulator-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=2)

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            self._cond.notify_all()

    def busy(self) -> bool:
        with self._cond:
            return bool(self._heap) or self._running > 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout=timeout)
                if self._stopping:
                    return
                _, _, fn = heapq.heappop(self._heap)
                self._running += 1
            try:
                fn()
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


# -- the engine ------------------------------------------------------------------------------


class Engine:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.keys = KeyStore()
        self.faults = FaultManager()
        for spec in config.faults:
            self.faults.add_from_dict(dict(spec.__dict__))
        self.tokens = TokenStore(config.token_ttl)
        self.delivery = DeliveryWorker(self.keys, config.tenant_id, config.customer_id, config.timings, self.faults)
        self.scheduler = Scheduler()
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
        """Forget all runtime state; keep keys, config topology and issued tokens."""
        with self.lock:
            self.scheduler.clear()
            self.delivery.reset()
            self.faults.clear()
            self.requests.clear()
            self._init_state()

    def _new_id(self) -> str:
        return str(next(self._ids))

    # -- tenant / auth -----------------------------------------------------------------------

    def check_credentials(self, key: str, secret: str) -> bool:
        return secrets.compare_digest(key, self.config.api_key) and secrets.compare_digest(
            secret, self.config.api_secret
        )

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

    # -- topology ----------------------------------------------------------------------------

    def add_queue(self, queue: QueueConfig) -> Queue:
        with self.lock:
            q = self.queues.setdefault(queue.id, Queue(queue.id, queue.name))
            return q

    def add_agent(self, cfg: AgentConfig) -> Agent:
        with self.lock:
            for qid in cfg.queues:
                if qid not in self.queues:
                    raise ValueError(f"agent {cfg.id} references unknown queue {qid}")
            agent = Agent(cfg.id, cfg.name, list(cfg.queues), cfg.mode, cfg.script)
            self.agents[cfg.id] = agent
            for qid in agent.queues:
                self._dispatch(qid)
            return agent

    def set_agent_available(self, agent_id: str, available: bool) -> Agent:
        with self.lock:
            agent = self._agent(agent_id)
            agent.available = available
            if available:
                for qid in agent.queues:
                    self._dispatch(qid)
            return agent

    # -- webhooks ----------------------------------------------------------------------------

    def create_webhook(self, name: str, uri: str, version: str = "v2.0") -> Webhook:
        with self.lock:
            hook = Webhook(self._new_id(), name, uri, version)
            self.webhooks[hook.id] = hook
        self._send(
            Event.build(
                "WEB_HOOK_VERIFY",
                uri,
                {"notificationVersion": version, "eventType": "WEB_HOOK_VERIFY"},
                webhook_id=hook.id,
            )
        )
        return hook

    def get_webhook(self, webhook_id: str) -> Webhook:
        with self.lock:
            hook = self.webhooks.get(webhook_id)
            if hook is None:
                raise NotFound("WebHook", webhook_id)
            return hook

    def list_webhooks(self) -> list[Webhook]:
        with self.lock:
            return list(self.webhooks.values())

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

    def create_channel(self, name: str, webhook_id: str, queue_id: str) -> Channel:
        with self.lock:
            self._check_channel_refs(webhook_id, queue_id)
            channel = Channel(self._new_id(), name, webhook_id, queue_id)
            self.channels[channel.id] = channel
            return channel

    def get_channel(self, channel_id: str) -> Channel:
        with self.lock:
            channel = self.channels.get(channel_id)
            if channel is None:
                raise NotFound("Channel", channel_id)
            return channel

    def list_channels(self) -> list[Channel]:
        with self.lock:
            return list(self.channels.values())

    def update_channel(self, channel_id: str, name: str, webhook_id: str, queue_id: str) -> Channel:
        with self.lock:
            channel = self.get_channel(channel_id)
            self._check_channel_refs(webhook_id, queue_id)
            channel.name, channel.webhook_id, channel.queue_id = name, webhook_id, queue_id
            return channel

    def delete_channel(self, channel_id: str) -> None:
        with self.lock:
            self.get_channel(channel_id)
            del self.channels[channel_id]

    def provision(self, webhook_uri: str, queue_id: str | None = None, name: str = "casebridge") -> tuple[str, str]:
        """Webhook + channel for `webhook_uri` on `queue_id` (default: first queue)."""
        with self.lock:
            qid = queue_id or next(iter(self.queues))
        hook = self.create_webhook(f"{name}-webhook", webhook_uri)
        channel = self.create_channel(f"{name}-channel", hook.id, qid)
        return hook.id, channel.id

    # -- conversations -----------------------------------------------------------------------

    def get_conversation(self, conversation_id: str) -> Conversation:
        with self.lock:
            conv = self.conversations.get(conversation_id)
            if conv is None:
                raise NotFound("Conversation", conversation_id)
            return conv

    def list_conversations(self, channel_id: str | None = None, status: str | None = None) -> list[Conversation]:
        with self.lock:
            convs = list(self.conversations.values())
        if channel_id:
            convs = [c for c in convs if c.channel_id == channel_id]
        if status and status != "all":
            convs = [c for c in convs if c.status == status]
        return convs

    def create_conversation(
        self, channel_id: str, customer: dict[str, str], history: list[dict[str, str]]
    ) -> Conversation:
        problems = []
        if len(customer) > MAX_CUSTOMER_PROPS:
            problems.append(
                Validation(
                    "customer",
                    str(len(customer)),
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
            conv = Conversation(
                b64url(secrets.token_bytes(16)), channel.id, dict(customer), time.time(), channel.queue_id
            )
            self.conversations[conv.id] = conv
            inter = self._start_interaction(conv, channel.queue_id, emit=False)
            for h in history:
                author = h.get("type") or "user"
                sender = conv.customer_participant_id if author == "user" else "bot"
                conv.messages.append(
                    Message(self._new_id(), inter.id, author, sender, h["text"], now_ms(), history=True)
                )
            self._emit_queued(conv, inter)
            self._dispatch(inter.queue_id)
            return conv

    def post_message(self, conversation_id: str, text: str, author_type: str = "user") -> Message:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            inter = conv.current
            reopened = inter is None
            if inter is None:
                # Reopen: a new interaction on the last queue, the next agent sees everything.
                conv.customer_left = False
                inter = self._start_interaction(conv, conv.last_queue_id, emit=False)
            sender = conv.customer_participant_id if author_type == "user" else "bot"
            msg = Message(self._new_id(), inter.id, author_type, sender, text, now_ms())
            conv.messages.append(msg)
            if reopened:
                self._emit_queued(conv, inter)
                self._dispatch(inter.queue_id)
            elif inter.state == "assigned" and inter.agent_id:
                self._schedule_reaction(inter.agent_id, conv.id, inter.id, text)
            return msg

    def customer_leaves(self, conversation_id: str) -> None:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            conv.customer_left = True
            inter = conv.current
            if inter is None:
                return
            if inter.state == "assigned" and inter.agent_id:
                agent = self.agents[inter.agent_id]
                self._end_interaction(conv, inter)
                self._emit_agent(conv, "AGENT_LEFT", agent)
                self._free_agent(agent)
            else:
                self._unqueue(conv, inter)
                self._end_interaction(conv, inter)

    def messages(self, conversation_id: str, interaction_id: str | None = None) -> list[Message]:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            return [m for m in conv.messages if interaction_id is None or m.interaction_id == interaction_id]

    def participants(self, conversation_id: str) -> list[dict[str, str]]:
        with self.lock:
            conv = self.get_conversation(conversation_id)
            lang = conv.customer.get("language", "en")
            result = [{"id": conv.customer_participant_id, "type": "user", "language": lang}]
            if any(m.author_type == "bot" for m in conv.messages):
                result.append({"id": "bot", "type": "bot", "language": lang})
            seen: set[str] = set()
            for inter in conv.interactions:
                for agent_id in inter.agents:
                    if agent_id not in seen:
                        seen.add(agent_id)
                        result.append({"id": agent_id, "type": "agent", "language": lang})
            return result

    # -- agents (control) --------------------------------------------------------------------

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NotFound("Agent", agent_id)
        return agent

    def _assigned(self, agent: Agent) -> tuple[Conversation, Interaction]:
        if agent.conversation_id is None:
            raise InvalidState(f"agent {agent.id} is not handling a conversation")
        conv = self.conversations[agent.conversation_id]
        inter = conv.current
        if inter is None or inter.agent_id != agent.id or inter.state != "assigned":
            raise InvalidState(f"agent {agent.id} has not joined conversation {conv.id}")
        return conv, inter

    def agent_accept(self, agent_id: str, conversation_id: str | None = None) -> Conversation:
        with self.lock:
            agent = self._agent(agent_id)
            if agent.conversation_id is not None:
                raise InvalidState(f"agent {agent_id} is busy with {agent.conversation_id}")
            candidates = [cid for qid in agent.queues for cid in self.queues[qid].waiting]
            if conversation_id is not None:
                if conversation_id not in candidates:
                    raise InvalidState(f"conversation {conversation_id} is not waiting in agent {agent_id}'s queues")
                target = conversation_id
            elif candidates:
                target = candidates[0]
            else:
                raise InvalidState(f"nothing waiting in queues {agent.queues}")
            conv = self.conversations[target]
            inter = conv.current
            assert inter is not None
            self._unqueue(conv, inter)
            agent.conversation_id = conv.id
            self._join(agent, conv, inter)
            return conv

    def agent_reply(self, agent_id: str, text: str) -> Message:
        with self.lock:
            agent = self._agent(agent_id)
            conv, inter = self._assigned(agent)
            return self._reply(agent, conv, inter, text)

    def agent_transfer(self, agent_id: str, queue_id: str) -> Conversation:
        with self.lock:
            agent = self._agent(agent_id)
            if queue_id not in self.queues:
                raise NotFound("Queue", queue_id)
            conv, inter = self._assigned(agent)
            self._transfer(agent, conv, inter, queue_id)
            return conv

    def agent_leave(self, agent_id: str) -> Conversation:
        with self.lock:
            agent = self._agent(agent_id)
            conv, inter = self._assigned(agent)
            self._leave(agent, conv, inter)
            return conv

    # -- internals ---------------------------------------------------------------------------

    def _start_interaction(self, conv: Conversation, queue_id: str, emit: bool = True) -> Interaction:
        inter = Interaction(
            f"int-{int(time.time() * 1000):x}-{secrets.token_hex(8)}-chat-00-{self.config.tenant_id}",
            queue_id,
            time.time(),
        )
        conv.interactions.append(inter)
        conv.last_queue_id = queue_id
        if emit:
            self._emit_queued(conv, inter)
        return inter

    def _emit_queued(self, conv: Conversation, inter: Interaction) -> None:
        inter.state = "queued"
        queue = self.queues[inter.queue_id]
        queue.waiting.append(conv.id)
        self._emit(conv, "QUEUED", {"queueId": queue.id, "queueName": queue.name})

    def _unqueue(self, conv: Conversation, inter: Interaction) -> None:
        queue = self.queues[inter.queue_id]
        if conv.id in queue.waiting:
            queue.waiting.remove(conv.id)
        if inter.state == "offered" and inter.agent_id:
            self._free_agent(self.agents[inter.agent_id])
            inter.agent_id = None

    def _end_interaction(self, conv: Conversation, inter: Interaction) -> None:
        inter.state = "ended"
        inter.end = time.time()

    def _dispatch(self, queue_id: str) -> None:
        """Offer waiting conversations to free scripted agents; manual agents accept via control."""
        queue = self.queues[queue_id]
        for conv_id in list(queue.waiting):
            agent = next(
                (a for a in self.agents.values() if queue_id in a.queues and a.free and a.mode == "script"),
                None,
            )
            if agent is None:
                return
            conv = self.conversations[conv_id]
            inter = conv.current
            assert inter is not None
            queue.waiting.remove(conv_id)
            inter.state = "offered"
            inter.agent_id = agent.id
            agent.conversation_id = conv_id
            self.scheduler.call_later(
                self.config.timings.accept_delay, functools.partial(self._accept_offer, agent, conv, inter)
            )

    def _accept_offer(self, agent: Agent, conv: Conversation, inter: Interaction) -> None:
        with self.lock:
            if inter.state != "offered" or inter.agent_id != agent.id or conv.current is not inter:
                return
            self._join(agent, conv, inter)

    def _join(self, agent: Agent, conv: Conversation, inter: Interaction) -> None:
        inter.state = "assigned"
        inter.agent_id = agent.id
        inter.agents.append(agent.id)
        agent.handled = 0
        self._emit_agent(conv, "AGENT_JOINED", agent)
        if agent.mode != "script":
            return
        if agent.script.greeting:
            self._reply(agent, conv, inter, agent.script.greeting)
        # Customer messages posted while queued get one answer, like a human catching up.
        pending = [
            m for m in conv.messages if m.interaction_id == inter.id and not m.history and m.author_type == "user"
        ]
        if pending:
            self._schedule_reaction(agent.id, conv.id, inter.id, pending[-1].text)

    def _schedule_reaction(self, agent_id: str, conv_id: str, inter_id: str, text: str) -> None:
        agent = self.agents[agent_id]
        if agent.mode != "script":
            return
        self.scheduler.call_later(
            self.config.timings.reply_delay, functools.partial(self._react, agent_id, conv_id, inter_id, text)
        )

    def _react(self, agent_id: str, conv_id: str, inter_id: str, text: str) -> None:
        with self.lock:
            agent = self.agents.get(agent_id)
            conv = self.conversations.get(conv_id)
            if agent is None or conv is None:
                return
            inter = conv.current
            if inter is None or inter.id != inter_id or inter.agent_id != agent_id or inter.state != "assigned":
                return
            script = agent.script
            agent.handled += 1
            if script.transfer_to and script.transfer_after and agent.handled >= script.transfer_after:
                self._transfer(agent, conv, inter, script.transfer_to)
            elif script.leave_after and agent.handled >= script.leave_after:
                if script.farewell:
                    self._reply(agent, conv, inter, script.farewell)
                self._leave(agent, conv, inter)
            elif script.kind == "auto_reply":
                self._reply(agent, conv, inter, script.reply_text)
            elif script.kind == "echo":
                self._reply(agent, conv, inter, f"{script.echo_prefix}{text}")

    def _reply(self, agent: Agent, conv: Conversation, inter: Interaction, text: str) -> Message:
        msg = Message(self._new_id(), inter.id, "agent", agent.id, text, now_ms())
        conv.messages.append(msg)
        self._emit(
            conv,
            "TEXT",
            {"agentId": agent.id, "agentName": agent.name, "message": text},
            message_type="AGENT",
            timestamp=msg.timestamp,
        )
        return msg

    def _transfer(self, agent: Agent, conv: Conversation, inter: Interaction, queue_id: str) -> None:
        if queue_id not in self.queues:
            raise NotFound("Queue", queue_id)
        inter.transfers.append({"from": inter.queue_id, "to": queue_id, "agentId": agent.id})
        self._emit(conv, "TRANSFER", {})
        self._emit_agent(conv, "AGENT_LEFT", agent)
        inter.agent_id = None
        inter.queue_id = queue_id
        conv.last_queue_id = queue_id
        self._emit_queued(conv, inter)
        self._free_agent(agent, dispatch=False)
        self._dispatch(queue_id)
        for qid in agent.queues:
            self._dispatch(qid)

    def _leave(self, agent: Agent, conv: Conversation, inter: Interaction) -> None:
        self._end_interaction(conv, inter)
        self._emit_agent(conv, "AGENT_LEFT", agent)
        self._free_agent(agent)

    def _free_agent(self, agent: Agent, dispatch: bool = True) -> None:
        agent.conversation_id = None
        agent.handled = 0
        if dispatch:
            for qid in agent.queues:
                self._dispatch(qid)

    # -- events ------------------------------------------------------------------------------

    def _emit_agent(self, conv: Conversation, event_type: str, agent: Agent) -> None:
        self._emit(conv, event_type, {"agentId": agent.id, "agentName": agent.name})

    def _emit(
        self,
        conv: Conversation,
        event_type: str,
        extra: dict[str, Any],
        message_type: str = "SYSTEM",
        timestamp: int | None = None,
    ) -> None:
        channel = self.channels.get(conv.channel_id)
        hook = self.webhooks.get(channel.webhook_id) if channel else None
        if hook is None:
            return
        payload: dict[str, Any] = {
            "eventType": event_type,
            "messageType": message_type,
            "conversationId": conv.id,
            **extra,
            "timestamp": timestamp if timestamp is not None else now_ms(),
        }
        self._send(Event.build(event_type, hook.uri, payload, conv.id, hook.id))

    def _send(self, event: Event) -> None:
        self.delivery.submit(event)

    # -- inspection --------------------------------------------------------------------------

    def transcript(self, conversation_id: str) -> dict[str, Any]:
        """The conversation as an agent sees it: history plus every message, across interactions."""
        with self.lock:
            conv = self.get_conversation(conversation_id)
            return {
                "id": conv.id,
                "channelId": conv.channel_id,
                "customer": dict(conv.customer),
                "status": conv.status,
                "customerLeft": conv.customer_left,
                "lastQueueId": conv.last_queue_id,
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
                "channels": [c.__dict__.copy() for c in self.channels.values()],
                "queues": [{"id": q.id, "name": q.name, "waiting": list(q.waiting)} for q in self.queues.values()],
                "agents": [
                    {
                        "id": a.id,
                        "name": a.name,
                        "queues": list(a.queues),
                        "mode": a.mode,
                        "available": a.available,
                        "conversationId": a.conversation_id,
                    }
                    for a in self.agents.values()
                ],
                "conversations": [
                    {"id": c.id, "status": c.status, "channelId": c.channel_id, "interactions": len(c.interactions)}
                    for c in self.conversations.values()
                ],
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
