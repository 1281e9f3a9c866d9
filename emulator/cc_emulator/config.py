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
    )
