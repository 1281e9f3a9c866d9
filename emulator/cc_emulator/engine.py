"""The simulated contact center, independent of any HTTP surface.

`Engine` is the one object the surfaces talk to. It wires the parts, which depend one way
(state <- events <- routing <- operations <- engine, none importing the engine):
- `state.CenterState`: the tables (webhooks, channels, conversations, queues, agents) and attachments;
- `events.Notifier`: webhook events in each API's dialect, handed to the delivery worker;
- `routing.Router`: queues, offers, scripted and manual agents;
- `metrics.RealtimeMetrics` (the router's): Real-time Metrics figures; `aftercare.Aftercare` (the router's): idle,
  post-agent assignment, read receipts;
- `tenant.TenantOps`, `conversations.ConversationOps`, `handoff.HandoffOps`, `settings.SettingsOps`: the
  operations, mixed into `Engine`.
HTTP surfaces (`http_v2`, `http_gateway`) translate requests into calls on `Engine` and its results
back into their wire shapes.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from .config import EmulatorConfig
from .conversations import ConversationOps
from .delivery import DeliveryWorker
from .events import Notifier
from .faults import FaultManager
from .handoff import HandoffOps
from .loop import Scheduler
from .model import (
    EXTERNAL_AUTHOR_TYPES,
    GATEWAY_VERSION,
    V2_VERSION,
    Agent,
    Attachment,
    Channel,
    Conversation,
    EngineError,
    Interaction,
    InvalidState,
    Message,
    NotFound,
    Queue,
    RequestRecord,
    Validation,
    ValidationFailed,
    Webhook,
    iso,
)
from .routing import Router
from .settings import SettingsOps
from .signing import KeyStore
from .tenant import API_VERSIONS, TenantOps
from .tokens import TokenStore

# Re-exported: surfaces and tests import these from here.
__all__ = [
    "API_VERSIONS",
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


class Engine(TenantOps, ConversationOps, HandoffOps, SettingsOps):
    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.keys = KeyStore()
        self.faults = FaultManager()
        for spec in config.faults:
            self.faults.add_from_dict(dict(spec.__dict__))
        self.tokens = TokenStore(config.token_ttl)
        self.delivery = DeliveryWorker(self.keys, config, self.faults)
        self.notify = Notifier(self, self.send_event)
        self.router = Router(self, self.notify)
        self.scheduler = self.router.scheduler
        self.metrics = self.router.metrics
        self._request_seq = itertools.count(1)
        self.requests: list[RequestRecord] = []
        self._init_state()

    def _init_state(self) -> None:
        self.clear_tables()
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
            self.metrics.reset()
            self._init_state()

    # -- requests ----------------------------------------------------------------------------

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

    # -- inspection --------------------------------------------------------------------------

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
                "queues": [
                    {
                        "id": q.id,
                        "name": q.name,
                        "waiting": list(q.waiting),
                        "status": q.status,
                        # Completed waits in seconds (accepted, abandoned or moved on), to measure estimates by.
                        "waits": self.metrics.actual_waits(q.id),
                    }
                    for q in self.queues.values()
                ],
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
