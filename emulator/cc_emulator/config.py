"""Emulator configuration: dataclasses plus loading from YAML/JSON and overrides."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

AgentMode = Literal["script", "manual"]
ScriptKind = Literal["auto_reply", "echo", "silent"]
# What a user message to an idle Chat Gateway conversation does (the Gateway docs are silent):
# "requeue" starts a new interaction on the last queue (v2's documented behaviour);
# "needs_assignment" stores it, and only PUT/PATCH with an assignment starts a new interaction.
GatewayReopen = Literal["requeue", "needs_assignment"]
GATEWAY_REOPEN_MODES: tuple[str, ...] = ("requeue", "needs_assignment")
# A queue's staffing, which the emulator's settings change: "open" (agents serve it), "closed" (its agents are
# logged out: after hours), "empty" (open, but every agent of it is on break: nobody eligible).
QueueStatus = Literal["open", "closed", "empty"]
QUEUE_STATUSES: tuple[str, ...] = ("open", "closed", "empty")
# The Real-time Metrics single-queue answer: the docs show an array, the OAS an object (ESCALATION.md E5).
MetricsShape = Literal["array", "object"]
METRICS_SHAPES: tuple[str, ...] = ("array", "object")


def attachment_spec(spec: dict[str, Any]) -> tuple[str, str, bytes]:
    """(filename, content type, bytes) from `{name, contentType, content (base64) | text}`."""
    name = str(spec.get("name") or spec.get("filename") or "attachment.bin")
    content_type = str(spec.get("contentType") or spec.get("content_type") or "application/octet-stream")
    if "text" in spec:
        data = str(spec["text"]).encode("utf-8")
    else:
        data = base64.b64decode(str(spec.get("content") or ""), validate=True)
    return name, content_type, data


@dataclass
class ScriptConfig:
    """What a scripted agent does on each customer message."""

    kind: ScriptKind = "auto_reply"
    reply_text: str = "Thanks, an agent is looking into it."
    echo_prefix: str = "echo: "
    greeting: str | None = None
    # Act after the N-th customer message seen in the interaction (history excluded).
    transfer_to: str | None = None
    transfer_after: int | None = None
    leave_after: int | None = None
    farewell: str | None = None
    # Sent with every auto reply: attachments as {name, contentType, content (base64) | text}, and cards.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    # Show typing (Gateway ACTIVITY) between reading a customer message and answering it.
    typing: bool = False
    # Seconds without a message before the agent wraps up (leaves); None = timings.agent_wrap_up_idle.
    wrap_up_idle: float | None = None
    # The wrap-up code (an id or name of `wrap_up_codes`) the agent picks when it ends an interaction itself.
    wrap_up_code: str | None = None

    def attachment_specs(self) -> list[tuple[str, str, bytes]]:
        return [attachment_spec(a) for a in self.attachments]


@dataclass
class AgentConfig:
    id: str
    name: str
    queues: list[str]
    mode: AgentMode = "script"
    script: ScriptConfig = field(default_factory=ScriptConfig)


@dataclass
class QueueConfig:
    id: str
    name: str
    status: QueueStatus = "open"


@dataclass
class WrapUpCodeConfig:
    """A wrap-up (disposition) code an agent can pick when ending an interaction; `queues` empty = every queue."""

    id: str
    name: str
    short_code: str = ""
    queues: list[str] = field(default_factory=list)


def default_wrap_up_codes() -> list[WrapUpCodeConfig]:
    return [
        WrapUpCodeConfig("1", "Resolved", "RES"),
        WrapUpCodeConfig("2", "Refund issued", "REF"),
        WrapUpCodeConfig("3", "Follow-up needed", "FUP"),
        WrapUpCodeConfig("4", "No response from customer", "NRC"),
    ]


@dataclass
class TimingConfig:
    accept_delay: float = 1.0
    reply_delay: float = 0.5
    delivery_timeout: float = 5.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    max_attempts: int = 6
    # A held out-of-order event is released after this long even if no other event follows.
    out_of_order_max_hold: float = 2.0
    # A scripted agent leaves a conversation after this many seconds without a message (0 = never).
    agent_wrap_up_idle: float = 30.0
    # A desk sign-in ends this many seconds after its page's last heartbeat (the tab went): the agent gets its
    # script back and its queues are served again.
    desk_signin_ttl: float = 30.0
    # Gateway CONVERSATION_UPDATE idle after the customer is silent this long while an agent has it (0 = never).
    customer_idle: float = 0.0
    # Real-time Metrics figures are recomputed at most this often (8x8: "refreshed every 5 s").
    metrics_refresh: float = 5.0
    # How long one "minute" of the post-agent assignment's timers lasts here (tests shorten it).
    post_agent_minute: float = 60.0


@dataclass
class FaultSpec:
    """A fault rule; see faults.FaultRule for the meaning of the fields."""

    kind: str
    op: str = "*"
    count: int | None = None
    status: int = 500
    retry_after: int | None = None
    seconds: float = 0.0


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8088
    tenant_id: str = "t1"
    customer_id: str = "c1"
    region: str = "us"
    api_key: str = "K"
    api_secret: str = "S"  # noqa: S105 - well-known local demo credential
    token_ttl: int = 3600
    queues: list[QueueConfig] = field(default_factory=list)
    agents: list[AgentConfig] = field(default_factory=list)
    timings: TimingConfig = field(default_factory=TimingConfig)
    faults: list[FaultSpec] = field(default_factory=list)
    # Chat Gateway behaviour the docs leave open (GATEWAY.md section 7); changeable at run time.
    gateway_reopen: GatewayReopen = "requeue"
    gateway_echo_is_echo: bool = False
    gateway_removed_accepts_messages: bool = True
    # Gateway `script` assignments: script id -> the queue the script routes to (unknown: channel's queue).
    gateway_scripts: dict[str, str] = field(default_factory=dict)
    # Lifetime of the pre-signed-like attachment URLs carried by MESSAGE events.
    attachment_url_ttl: int = 300
    # Base of those URLs; None = the server's own http://host:port.
    public_base_url: str | None = None
    # Real-time Metrics v5: its own OAuth credentials (an app with the `analytics realtime-api` product).
    metrics_api_key: str = "AK"
    metrics_api_secret: str = "AS"  # noqa: S105 - well-known local demo credential
    metrics_token_ttl: int = 1799
    # Multi-tenant customers must send X-Tenant-Info with this value (None: the header is not needed).
    metrics_tenant_info: str | None = None
    metrics_single_queue_shape: MetricsShape = "array"
    # Wrap-up codes the agent desk and the control API offer.
    wrap_up_codes: list[WrapUpCodeConfig] = field(default_factory=default_wrap_up_codes)
    # Not 8x8's behaviour, off by default: 8x8 carries no wrap-up code on either webhook (ESCALATION.md section 6).
    # On, the interaction-end event (Gateway MEMBERS_CHANGED agent left, v2 AGENT_LEFT) carries `wrapUpCode`.
    wrap_up_code_on_webhook: bool = False
    # Gateway ACTIVITY read-receipts when an agent reads; 8x8 documents the event but says no channel sends it
    # yet (GATEWAY.md T19), so it is off by default.
    gateway_read_receipts: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_topology() -> tuple[list[QueueConfig], list[AgentConfig]]:
    """Two queues with one scripted agent each: enough for reopen and transfer demos."""
    queues = [QueueConfig("101", "Support"), QueueConfig("102", "Billing")]
    agents = [
        AgentConfig("agent-1", "Alice Agent", ["101"]),
        AgentConfig("agent-2", "Bob Agent", ["102"]),
    ]
    return queues, agents


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    return cls(**data)


def config_from_dict(data: dict[str, Any]) -> EmulatorConfig:
    data = dict(data)
    queues = [_build(QueueConfig, {k: str(v) for k, v in q.items()}) for q in data.pop("queues", [])]
    for q in queues:
        if q.status not in QUEUE_STATUSES:
            raise ValueError(f"queue {q.id}: status must be one of {list(QUEUE_STATUSES)}")
    codes = data.pop("wrap_up_codes", None)
    agents = []
    for item in data.pop("agents", []):
        raw = dict(item)
        script = _build(ScriptConfig, raw.pop("script", {}) or {})
        raw["queues"] = [str(q) for q in raw.get("queues", [])]
        agents.append(_build(AgentConfig, {**raw, "script": script}))
    timings = _build(TimingConfig, data.pop("timings", {}) or {})
    faults = [_build(FaultSpec, f) for f in data.pop("faults", []) or []]
    cfg: EmulatorConfig = _build(EmulatorConfig, data)
    cfg.timings = timings
    cfg.faults = faults
    if codes is not None:
        cfg.wrap_up_codes = [
            _build(WrapUpCodeConfig, {**c, "id": str(c["id"]), "queues": [str(q) for q in c.get("queues", [])]})
            for c in codes
        ]
    if cfg.metrics_single_queue_shape not in METRICS_SHAPES:
        raise ValueError(f"metrics_single_queue_shape must be one of {list(METRICS_SHAPES)}")
    if cfg.gateway_reopen not in GATEWAY_REOPEN_MODES:
        raise ValueError(f"gateway_reopen must be one of {list(GATEWAY_REOPEN_MODES)}")
    if not queues and not agents:
        queues, agents = default_topology()
    cfg.queues = queues
    cfg.agents = agents
    return cfg


def load_config(path: str | Path | None) -> EmulatorConfig:
    """Load a YAML or JSON file (JSON is valid YAML, so one parser serves both)."""
    if path is None:
        return config_from_dict({})
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return config_from_dict(data or {})


def fast_timings() -> TimingConfig:
    """Timings for tests: everything happens within tens of milliseconds."""
    return TimingConfig(
        accept_delay=0.02,
        reply_delay=0.02,
        delivery_timeout=1.0,
        retry_base_delay=0.02,
        retry_max_delay=0.1,
        max_attempts=4,
        out_of_order_max_hold=0.5,
        metrics_refresh=0.0,
    )
