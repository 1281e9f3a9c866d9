"""The case's live state, and how 8x8's events move it. Pure functions: no I/O here.

One clock per source: 8x8's events are ordered among themselves by 8x8's own timestamp (`state_at`), so a
late or re-ordered event never moves the state backwards (it still goes on the timeline). The connector's
own transitions (the customer leaving, the customer writing again) are never compared with 8x8's clock:
a closed case ignores 8x8's events until the connector has asked 8x8 to reopen it (`reopen_requested`),
and then only the new interaction's QUEUED moves it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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


def apply_event(current: LiveState, kind: EventKind, timestamp: int, detail: dict[str, Any]) -> LiveState | None:
    """The state after 8x8's event, or None when the event does not change it (older, or informational)."""
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
    return replace(
        current,
        state=CaseState.CLOSED,
        changed_at=now_ms,
        agent_id=None,
        agent_name=None,
        transfer_pending=False,
        reopen_requested=False,
    )


def reopen_requested(current: LiveState) -> LiveState:
    """The customer wrote again after leaving: the next QUEUED from 8x8 reopens the case."""
    return replace(current, reopen_requested=True)


def needs_reopen(current: LiveState) -> bool:
    """No live interaction: a customer message must start a new one."""
    return current.state in (CaseState.AGENT_LEFT, CaseState.CLOSED)
