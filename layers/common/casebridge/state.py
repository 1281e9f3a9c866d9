"""The case's live state, and how 8x8's events move it. Pure functions: no I/O here.

Events are ordered by 8x8's own timestamp, so a late or re-ordered event never moves the state backwards:
it still goes on the timeline, it just doesn't change the state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from casebridge.models import CaseState, WebhookEventType


@dataclass(frozen=True)
class LiveState:
    state: CaseState = CaseState.OPEN
    state_at: int = 0  # epoch ms of the event that set the state
    queue_id: str | None = None
    queue_name: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    transfer_pending: bool = False

    def to_view(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "agent": {"id": self.agent_id, "name": self.agent_name} if self.agent_id else None,
            "queue": {"id": self.queue_id, "name": self.queue_name} if self.queue_id else None,
            "transferPending": self.transfer_pending,
        }


def apply_event(
    current: LiveState, event_type: WebhookEventType, timestamp: int, detail: dict[str, Any]
) -> LiveState | None:
    """The state after the event, or None when the event does not change it (older, or informational)."""
    if timestamp < current.state_at:
        return None
    if event_type is WebhookEventType.QUEUED:
        # A transfer stays pending until the next agent joins: the new queue's QUEUED may come before
        # the old agent's AGENT_LEFT, and that AGENT_LEFT must not read as the end.
        return replace(
            current,
            state=CaseState.QUEUED,
            state_at=timestamp,
            queue_id=detail.get("queueId"),
            queue_name=detail.get("queueName"),
            agent_id=None,
            agent_name=None,
        )
    if event_type is WebhookEventType.AGENT_JOINED:
        return replace(
            current,
            state=CaseState.WITH_AGENT,
            state_at=timestamp,
            agent_id=detail.get("agentId"),
            agent_name=detail.get("agentName"),
            transfer_pending=False,
        )
    if event_type is WebhookEventType.TRANSFER:
        return replace(current, state=CaseState.QUEUED, state_at=timestamp, transfer_pending=True)
    if event_type is WebhookEventType.AGENT_LEFT:
        # After a transfer the agent leaving is not the end; after the customer left the case stays closed.
        if current.transfer_pending:
            following = CaseState.QUEUED
        elif current.state is CaseState.CLOSED:
            following = CaseState.CLOSED
        else:
            following = CaseState.AGENT_LEFT
        return replace(current, state=following, state_at=timestamp, agent_id=None, agent_name=None)
    return None


def customer_left(current: LiveState, timestamp: int) -> LiveState:
    # The agent goes with the customer: 8x8's AGENT_LEFT may carry an older timestamp and be ignored.
    return replace(
        current,
        state=CaseState.CLOSED,
        state_at=max(timestamp, current.state_at),
        agent_id=None,
        agent_name=None,
        transfer_pending=False,
    )
