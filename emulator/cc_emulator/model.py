"""The contact center's records and their states, shared by the engine, routing and the HTTP surfaces.

Interactions and agents carry `StrEnum` states whose transitions are methods: a transition from a
state that does not allow it raises `InvalidState`, so routing bugs surface as errors, not drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .config import ScriptConfig

MAX_CUSTOMER_PROPS = 30
MAX_HISTORY_MESSAGES = 200
EXTERNAL_AUTHOR_TYPES = ("user", "bot")
V2_VERSION = "v2.0"
GATEWAY_VERSION = "Chat Gateway v1.0"


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


# -- records ---------------------------------------------------------------------------------


@dataclass
class Webhook:
    id: str
    name: str
    uri: str
    version: str

    @property
    def gateway(self) -> bool:
        """Events for this webhook use the Chat Gateway v1 dialect (else Chat API v2)."""
        return self.version == GATEWAY_VERSION


@dataclass
class Channel:
    id: str
    name: str
    webhook_id: str
    queue_id: str
    type: str = "ChatAPI"


@dataclass
class Attachment:
    id: str
    conversation_id: str
    filename: str
    content_type: str
    data: bytes
    created: float
    author_type: str  # user | bot | agent

    @property
    def kind(self) -> str:
        """The webhook `attachments[].type`: image | video | audio | file."""
        major = self.content_type.split("/", 1)[0]
        return major if major in ("image", "video", "audio") else "file"


@dataclass
class Message:
    id: str
    interaction_id: str  # "" while stored on an idle conversation that waits for an assignment
    author_type: str  # user | bot | agent | system
    sender_id: str
    text: str
    timestamp: int
    history: bool = False
    attachments: list[str] = field(default_factory=list)  # attachment ids
    cards: list[dict[str, Any]] = field(default_factory=list)


class InteractionState(StrEnum):
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    ENDED = "ended"


@dataclass
class Interaction:
    id: str
    queue_id: str
    start: float
    state: InteractionState = InteractionState.QUEUED
    agent_id: str | None = None
    end: float | None = None
    transfers: list[dict[str, str]] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    # When it began waiting in its current queue, and when its agent took it (for the real-time metrics).
    queued_at: float = 0.0
    assigned_at: float | None = None
    # The code the agent chose when it ended the interaction: {id, name, shortCode}.
    wrap_up_code: dict[str, str] | None = None

    def _require(self, *allowed: InteractionState) -> None:
        if self.state not in allowed:
            raise InvalidState(f"interaction {self.id} is {self.state}, not {'/'.join(allowed)}")

    def enqueue(self, queue_id: str) -> None:
        """Wait in `queue_id` (first queueing, a transfer, or a withdrawn offer)."""
        self._require(InteractionState.QUEUED, InteractionState.OFFERED, InteractionState.ASSIGNED)
        self.state = InteractionState.QUEUED
        self.queue_id = queue_id
        self.agent_id = None
        self.queued_at = time.time()

    def offer(self, agent_id: str) -> None:
        self._require(InteractionState.QUEUED)
        self.state = InteractionState.OFFERED
        self.agent_id = agent_id

    def withdraw_offer(self) -> None:
        self._require(InteractionState.OFFERED)
        self.state = InteractionState.QUEUED
        self.agent_id = None

    def assign(self, agent_id: str) -> None:
        self._require(InteractionState.QUEUED, InteractionState.OFFERED)
        self.state = InteractionState.ASSIGNED
        self.agent_id = agent_id
        self.agents.append(agent_id)
        self.assigned_at = time.time()

    def finish(self, at: float) -> None:
        self._require(InteractionState.QUEUED, InteractionState.OFFERED, InteractionState.ASSIGNED)
        self.state = InteractionState.ENDED
        self.end = at

    @property
    def assigned_agent(self) -> str | None:
        return self.agent_id if self.state == InteractionState.ASSIGNED else None


@dataclass
class PostAgentAssignment:
    """A Gateway post-agent assignment: once the agent's part ends, the conversation goes to this webhook."""

    webhook_id: str
    notify_channel_webhook: bool
    max_total_minutes: int | None
    user_timeout_minutes: int | None
    # Set while the bot has the conversation (after the agent): when that began, and a token for its timers.
    started: float | None = None
    generation: int = 0


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
    # Chat Gateway user data beyond the flat string fields.
    additional_properties: list[dict[str, str]] = field(default_factory=list)
    # A Gateway `script` assignment, shown while the conversation waits.
    script_id: str | None = None
    attachments: dict[str, Attachment] = field(default_factory=dict)
    user_typing: list[dict[str, Any]] = field(default_factory=list)
    # Registered by POST post-agent-assignment; `bot_phase` is it once the agent's part ended.
    post_agent: PostAgentAssignment | None = None
    bot_phase: PostAgentAssignment | None = None
    # Read receipts the integration sent (authorType -> readAt, epoch ms), and the agent's last read.
    read_by: dict[str, int] = field(default_factory=dict)
    agent_read_at: int = 0
    # The bot's thinking indicator shows until this epoch ms (0: not thinking).
    thinking_until: int = 0
    # Bumped on every customer message; a customer-idle timer fires only if it still matches.
    customer_activity: int = 0
    idle_signalled: bool = False

    @property
    def current(self) -> Interaction | None:
        if self.interactions and self.interactions[-1].state != InteractionState.ENDED:
            return self.interactions[-1]
        return None

    @property
    def status(self) -> str:
        """Chat API v2 status."""
        cur = self.current
        if cur is None:
            return "created"
        return "handling" if cur.state == InteractionState.ASSIGNED else "pending"

    @property
    def gateway_state(self) -> str:
        """Chat Gateway state: created | active (an interaction is live, or the bot has it after the agent) |
        idle (none, or the customer went silent while with an agent)."""
        if self.current is not None:
            return "idle" if self.idle_signalled else "active"
        if self.bot_phase is not None:
            return "active"
        return "idle" if self.interactions else "created"

    @property
    def customer_participant_id(self) -> str:
        return self.customer.get("customerId") or self.customer.get("userId") or "customer"

    def assignment(self) -> dict[str, str]:
        """Gateway `assignment`: the agent while one is assigned, else the script or queue."""
        cur = self.current
        if cur is not None and cur.assigned_agent:
            return {"type": "agent", "id": cur.assigned_agent}
        if cur is None and self.bot_phase is not None:
            return {"type": "webhook", "id": self.bot_phase.webhook_id}
        if self.script_id is not None:
            return {"type": "script", "id": self.script_id}
        return {"type": "queue", "id": cur.queue_id if cur else self.last_queue_id}


@dataclass
class Queue:
    id: str
    name: str
    waiting: list[str] = field(default_factory=list)  # conversation ids, FIFO
    status: str = "open"  # open | closed (agents logged out) | empty (agents on break)


class AgentState(StrEnum):
    FREE = "free"
    RESERVED = "reserved"  # offered a conversation, not yet joined
    HANDLING = "handling"


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
    state: AgentState = AgentState.FREE
    typing: bool = False
    # Bumped on every activity in the assignment; a wrap-up timer only fires if it still matches.
    activity: int = 0
    status_since: float = field(default_factory=time.time)

    @property
    def free(self) -> bool:
        return self.available and self.state == AgentState.FREE

    def reserve(self, conversation_id: str) -> None:
        if self.state != AgentState.FREE:
            raise InvalidState(f"agent {self.id} is busy with {self.conversation_id}")
        self.state = AgentState.RESERVED
        self.conversation_id = conversation_id
        self.status_since = time.time()

    def engage(self, conversation_id: str) -> None:
        if self.state == AgentState.HANDLING or (
            self.state == AgentState.RESERVED and self.conversation_id != conversation_id
        ):
            raise InvalidState(f"agent {self.id} is busy with {self.conversation_id}")
        self.state = AgentState.HANDLING
        self.conversation_id = conversation_id
        self.handled = 0
        self.activity += 1
        self.status_since = time.time()

    def release(self) -> None:
        self.state = AgentState.FREE
        self.status_since = time.time()
        self.conversation_id = None
        self.handled = 0
        self.typing = False
        self.activity += 1


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


USER_FIELDS = ("name", "userId", "email", "phone", "company", "caseId", "language")


def gateway_user(conv: Conversation) -> dict[str, Any]:
    """The Gateway `user` object of a conversation (flat v2 keys beyond the known ones become properties)."""
    user: dict[str, Any] = {k: v for k, v in conv.customer.items() if k in USER_FIELDS}
    extra = [{"key": k, "value": v} for k, v in conv.customer.items() if k not in USER_FIELDS]
    props = [dict(p) for p in conv.additional_properties] + extra
    if props:
        user["additionalProperties"] = props
    return user
