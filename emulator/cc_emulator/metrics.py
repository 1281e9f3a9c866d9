"""Real-time Metrics v5 figures per queue, computed from the simulated contact center (ESCALATION.md section 1).

The figures are a snapshot recomputed at most every `timings.metrics_refresh` seconds (8x8: "refreshed every
5 s"), so two calls within that window see the same numbers, as they would at 8x8. Durations are milliseconds
(E6 infers that; `slaTimeThreshold.today` and `timeOnStatus.rt` are documented in ms). Averages over a window
with no completed interaction are `null`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .model import Agent, AgentState, InteractionState, Queue
from .state import CenterState

# Waits and handling times older than this are forgotten (the longest window is `.today`).
KEEP_SECONDS = 24 * 3600
WINDOWS = {"int-15m": 15 * 60, "int-30m": 30 * 60}
AGENT_METRICS = (
    "availableIdle.rt",
    "eligible.rt",
    "enabled.rt",
    "busy.rt",
    "handling.rt",
    "offering.rt",
    "wrapUp.rt",
    "busyOther.rt",
    "onBreak.rt",
    "workingOffline.rt",
    "loggedOut.rt",
)
INTERACTION_METRICS = (
    "interactionsWaitInQueue.rt",
    "interactionsLongestWaitInQueue.rt",
    "interactionsHandling.rt",
    *(f"interactionsAvgWaitTime.{w}" for w in (*WINDOWS, "today")),
    *(f"avgHandlingTime.{w}" for w in (*WINDOWS, "today")),
)
QUEUE_METRICS = (*AGENT_METRICS, *INTERACTION_METRICS)


class UnknownMetric(ValueError):
    pass


def agent_status(agent: Agent, queue: Queue) -> str:
    """`status.rt` of an agent as seen from one queue: Available, Handling, OnBreak or LoggedOut."""
    if queue.status == "closed":
        return "LoggedOut"
    if queue.status == "empty" or not agent.available:
        return "OnBreak"
    return "Handling" if agent.state == AgentState.HANDLING else "Available"


@dataclass
class _Durations:
    """(ended at, seconds) of completed waits or handlings, newest last."""

    items: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, ended: float, seconds: float) -> None:
        self.items.append((ended, max(0.0, seconds)))
        while self.items and self.items[0][0] < ended - KEEP_SECONDS:
            self.items.popleft()

    def mean_ms(self, since: float) -> int | None:
        recent = [s for at, s in self.items if at >= since]
        return round(1000 * sum(recent) / len(recent)) if recent else None


@dataclass
class Snapshot:
    at: float  # epoch seconds
    taken: float  # monotonic
    queues: dict[str, dict[str, Any]]


class RealtimeMetrics:
    """Per-queue figures for the metrics surface; waits are recorded by the router as they end."""

    def __init__(self, engine: CenterState) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._waits: dict[str, _Durations] = {}
        self._handlings: dict[str, _Durations] = {}
        self._snapshot: Snapshot | None = None
        self.computed = 0  # how many snapshots were taken (tests check the refresh window)
        self.clock: Callable[[], float] = time.monotonic  # the refresh window's clock (tests move it)

    def reset(self) -> None:
        with self._lock:
            self._waits.clear()
            self._handlings.clear()
            self._snapshot = None

    # -- what the router reports --------------------------------------------------------------

    def wait_ended(self, queue_id: str, queued_at: float, ended: float) -> None:
        """An interaction stopped waiting in `queue_id` (accepted, abandoned or moved on)."""
        with self._lock:
            self._waits.setdefault(queue_id, _Durations()).add(ended, ended - queued_at)

    def handling_ended(self, queue_id: str, assigned_at: float, ended: float) -> None:
        with self._lock:
            self._handlings.setdefault(queue_id, _Durations()).add(ended, ended - assigned_at)

    def actual_waits(self, queue_id: str) -> list[float]:
        """Completed waits of the queue in seconds, oldest first (to measure an estimate against)."""
        with self._lock:
            return [s for _, s in self._waits.get(queue_id, _Durations()).items]

    # -- the snapshot --------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        refresh = self.engine.config.timings.metrics_refresh
        with self._lock:
            snap = self._snapshot
            if snap is not None and self.clock() - snap.taken < refresh:
                return snap
        with self.engine.lock:
            queues = {qid: self._figures(q) for qid, q in self.engine.queues.items()}
        snap = Snapshot(time.time(), self.clock(), queues)
        with self._lock:
            self._snapshot = snap
            self.computed += 1
        return snap

    def _figures(self, queue: Queue) -> dict[str, Any]:
        e = self.engine
        now = time.time()
        agents = [a for a in e.agents.values() if queue.id in a.queues]
        statuses = [(a, agent_status(a, queue)) for a in agents]
        counts = {s: sum(1 for _, st in statuses if st == s) for s in ("Available", "Handling", "OnBreak", "LoggedOut")}
        offering = sum(1 for a, st in statuses if st == "Available" and a.state == AgentState.RESERVED)
        idle = sum(1 for a, st in statuses if st == "Available" and a.state == AgentState.FREE)
        waiting_since: list[float] = []
        handling = 0
        for conv in e.conversations.values():
            inter = conv.current
            if inter is None or inter.queue_id != queue.id:
                continue
            if inter.state in (InteractionState.QUEUED, InteractionState.OFFERED):
                waiting_since.append(inter.queued_at)
            elif inter.state == InteractionState.ASSIGNED:
                handling += 1
        enabled = len(agents) - counts["LoggedOut"]
        figures: dict[str, Any] = {
            "availableIdle.rt": idle,
            "eligible.rt": enabled - counts["OnBreak"],
            "enabled.rt": enabled,
            "busy.rt": counts["Handling"] + offering,
            "handling.rt": counts["Handling"],
            "offering.rt": offering,
            "wrapUp.rt": 0,
            "busyOther.rt": 0,
            "onBreak.rt": counts["OnBreak"],
            "workingOffline.rt": 0,
            "loggedOut.rt": counts["LoggedOut"],
            "interactionsWaitInQueue.rt": len(waiting_since),
            "interactionsLongestWaitInQueue.rt": round(1000 * (now - min(waiting_since))) if waiting_since else 0,
            "interactionsHandling.rt": handling,
        }
        day_start = now - now % 86400  # the UTC day: the emulator's tenant time zone is UTC
        waits = self._waits.get(queue.id, _Durations())
        handlings = self._handlings.get(queue.id, _Durations())
        for window, seconds in (*WINDOWS.items(), ("today", now - day_start)):
            figures[f"interactionsAvgWaitTime.{window}"] = waits.mean_ms(now - seconds)
            figures[f"avgHandlingTime.{window}"] = handlings.mean_ms(now - seconds)
        return figures

    def agents(self, queue_id: str) -> list[dict[str, Any]]:
        """Per-agent `status.rt` and `timeOnStatus.rt` (ms) for the agents of one queue."""
        e = self.engine
        with e.lock:
            queue = e.queues[queue_id]
            now = time.time()
            return [
                {
                    "id": a.id,
                    "name": a.name,
                    "metrics": [
                        {"key": "status.rt", "value": agent_status(a, queue)},
                        {"key": "timeOnStatus.rt", "value": round(1000 * (now - a.status_since))},
                    ],
                }
                for a in e.agents.values()
                if queue_id in a.queues
            ]


def select(figures: dict[str, Any], wanted: list[str]) -> list[dict[str, Any]]:
    """`[{key, value}]` for the wanted metrics (all when none is named); UnknownMetric for a key not served."""
    keys = wanted or list(QUEUE_METRICS)
    unknown = [k for k in keys if k not in figures]
    if unknown:
        raise UnknownMetric(f"Bad request: Unknown metric(s) {unknown}")
    return [{"key": k, "value": figures[k]} for k in keys]
