"""The case's live state, and how 8x8's events move it. Pure functions: no I/O here.

One clock per source: 8x8's events are ordered among themselves by 8x8's own timestamp. The state is derived
from the set of 8x8's state events, folded in 8x8's order (`derive`): the same events give the same state
whatever order they arrived in, and every event goes on the timeline whatever its order. To fold a late event in
its place, the state keeps the 8x8 events since its last reset point (`events`) and the state before them
(`base`); at most MAX_KEPT_EVENTS, the oldest folded into the base (an event older than the base's newest is then
on the timeline only). The connector's own transitions (the customer leaving, the customer writing again) are
reset points, never compared with 8x8's clock: a closed case ignores 8x8's events until the connector has asked
8x8 to reopen it (`reopen_requested`), and then only the new interaction's QUEUED moves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from casebridge.events import EventKind


class CaseState(StrEnum):
    OPEN = "open"
    QUEUED = "queued"
    WITH_AGENT = "with_agent"
    AGENT_LEFT = "agent_left"
    CLOSED = "closed"


@dataclass(frozen=True)
class LiveState:
    state: CaseState = CaseState.OPEN
    state_at: int = 0  # 8x8's timestamp (epoch ms) of the newest 8x8 event that set the state
    queue_id: str | None = None
    queue_name: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    transfer_pending: bool = False
    reopen_requested: bool = False
    changed_at: int = 0  # when the state last changed, by the clock of whoever changed it (for display)
    # 8x8's state events since the last reset point, in 8x8's order, and the state before them (None: a state
    # with no events kept is its own base).
    events: tuple[StateEvent, ...] = ()
    base: LiveState | None = None

    def without_history(self) -> LiveState:
        return replace(self, events=(), base=None)


MAX_KEPT_EVENTS = 50
# Ties on 8x8's timestamp are broken by kind, then event id: any fixed order will do, the same for every arrival.
_RANK = {
    EventKind.QUEUED: 0,
    EventKind.TRANSFERRED: 1,
    EventKind.AGENT_JOINED: 2,
    EventKind.AGENT_LEFT: 3,
    EventKind.CONVERSATION_IDLE: 4,
    EventKind.CUSTOMER_LEFT: 5,
}
STATE_KINDS = frozenset(_RANK)
_DETAIL_FIELDS = ("queueId", "queueName", "agentId", "agentName")


@dataclass(frozen=True)
class StateEvent:
    """One of 8x8's state events, as the fold needs it."""

    kind: EventKind
    at: int
    event_id: str
    detail: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, kind: EventKind, at: int, event_id: str, detail: Mapping[str, Any]) -> StateEvent:
        kept = {name: str(detail[name]) for name in _DETAIL_FIELDS if detail.get(name) is not None}
        return cls(kind, at, event_id, kept)

    @property
    def order(self) -> tuple[int, int, str]:
        return (self.at, _RANK[self.kind], self.event_id)


def derive(base: LiveState, events: Iterable[StateEvent]) -> LiveState:
    """The state after `events`, folded in 8x8's order from `base` (whatever order they arrived in)."""
    live = base.without_history()
    for event in sorted(events, key=lambda e: e.order):
        live = apply_event(live, event.kind, event.at, dict(event.detail)) or live
    return live


def record_event(current: LiveState, event: StateEvent) -> LiveState | None:
    """The state with 8x8's `event` taken in at its place in 8x8's order. None: not a state event, or already
    taken in. The derived fields may stay the same (an event that changes nothing in its place)."""
    if event.kind not in STATE_KINDS or any(e.event_id == event.event_id for e in current.events):
        return None
    base = current.base or current.without_history()
    events = tuple(sorted((*current.events, event), key=lambda e: e.order))
    if len(events) > MAX_KEPT_EVENTS:
        folded, events = events[: len(events) - MAX_KEPT_EVENTS], events[len(events) - MAX_KEPT_EVENTS :]
        base = derive(base, folded)
    return replace(derive(base, events), events=events, base=base)


def apply_event(current: LiveState, kind: EventKind, timestamp: int, detail: dict[str, Any]) -> LiveState | None:
    """One step of the fold: the state after 8x8's event, or None when the event does not change it (older than
    the state, or informational). Arrival order is `record_event`'s business, not this function's."""
    if timestamp < current.state_at:
        return None
    if current.state is CaseState.CLOSED and not (kind is EventKind.QUEUED and current.reopen_requested):
        return None  # the customer left: only the reopen the connector asked for moves the case again
    moved = replace(current, state_at=timestamp, changed_at=timestamp)
    if kind is EventKind.QUEUED:
        # A transfer stays pending until the next agent joins: the new queue's QUEUED may come before
        # the old agent's AGENT_LEFT, and that AGENT_LEFT must not read as the end.
        return replace(
            moved,
            state=CaseState.QUEUED,
            queue_id=detail.get("queueId") or current.queue_id,
            queue_name=detail.get("queueName") if detail.get("queueId") else current.queue_name,
            agent_id=None,
            agent_name=None,
            reopen_requested=False,
        )
    if kind is EventKind.AGENT_JOINED:
        return replace(
            moved,
            state=CaseState.WITH_AGENT,
            agent_id=detail.get("agentId"),
            agent_name=detail.get("agentName"),
            transfer_pending=False,
        )
    if kind is EventKind.TRANSFERRED:
        return replace(moved, state=CaseState.QUEUED, transfer_pending=True)
    if kind is EventKind.AGENT_LEFT:
        # After a transfer the agent leaving is not the end.
        following = CaseState.QUEUED if current.transfer_pending else CaseState.AGENT_LEFT
        return replace(moved, state=following, agent_id=None, agent_name=None)
    if kind is EventKind.CONVERSATION_IDLE:
        # Gateway: no live interaction. Says something new only while the case still thinks one is live.
        if current.transfer_pending or current.state not in (CaseState.QUEUED, CaseState.WITH_AGENT):
            return None
        return replace(moved, state=CaseState.AGENT_LEFT, agent_id=None, agent_name=None)
    if kind is EventKind.CUSTOMER_LEFT:
        return replace(moved, state=CaseState.CLOSED, agent_id=None, agent_name=None, transfer_pending=False)
    return None


def customer_left(current: LiveState, now_ms: int) -> LiveState:
    """The customer left through the connector. 8x8's clock (`state_at`) is left alone: see the module doc."""
    # The agent goes with the customer: 8x8's AGENT_LEFT may carry an older timestamp and be ignored.
    # A reset point: 8x8's events kept so far are folded into the state, which becomes the new base.
    return replace(
        current.without_history(),
        state=CaseState.CLOSED,
        changed_at=now_ms,
        agent_id=None,
        agent_name=None,
        transfer_pending=False,
        reopen_requested=False,
    )


def reopen_requested(current: LiveState) -> LiveState:
    """The customer wrote again after leaving: the next QUEUED from 8x8 reopens the case."""
    return replace(current.without_history(), reopen_requested=True)  # a reset point too


def needs_reopen(current: LiveState) -> bool:
    """No live interaction: a customer message must start a new one."""
    return current.state in (CaseState.AGENT_LEFT, CaseState.CLOSED)
