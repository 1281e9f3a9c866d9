"""Events casebridge derives around a hand-off, recorded through the case's outbox (timeline + bus, at least
once, a stable eventId per occasion so a repeat is dropped by eventId):

- HandedBack {reason: "agent-ended", wrapUpCode?}: the agent ended the interaction (AgentLeft with no transfer
  pending). Right after 8x8's event (the intake), and again by the sweep if that was lost.
- CustomerIdle {source: "8x8"}: 8x8's CONVERSATION_UPDATE idle while an agent had the case (Gateway).
- CustomerMessage {messageId, authorType, text?, attachments?, cards?, clientMessageId?} and MessageDelivered
  {messageId, clientMessageId?}: 8x8 took a customer's or bot's message (POST answered 2xx: 8x8 has no
  delivery event, ESCALATION.md §7).
MessageRead {readAt} is 8x8's own event (Gateway ACTIVITY read-receipts), recorded by the intake as it comes.
"""

from __future__ import annotations

from typing import Any

from casebridge import cases
from casebridge.clock import now_ms
from casebridge.escalation.marks import raise_mark, read_marks, set_marks
from casebridge.events import ContactCenterEvent, EventKind
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.outbox import once_per_event_id
from casebridge.services import Services
from casebridge.state import CaseState, LiveState, customer_left
from casebridge.store.records import CaseRecord, TimelineEntry


def record_own_event(
    services: Services,
    case_id: str,
    conversation_id: str,
    event_type: str,
    event_id: str,
    detail: dict[str, Any],
    *,
    closes: bool = False,
) -> TimelineEntry:
    """A connector-made event on the case's outbox, then the bus. `closes`: the case is closed with it."""
    at = now_ms()
    entry = TimelineEntry(
        event_id=event_id,
        type=event_type,
        conversation_id=conversation_id,
        occurred_at=at,
        received_at=at,
        detail={k: v for k, v in detail.items() if v is not None},
    )

    def transition(live: LiveState) -> LiveState | None:
        return customer_left(live, at) if closes and live.state is not CaseState.CLOSED else None

    cases.record_and_publish(services, case_id, entry, transition, receipt=once_per_event_id(services, entry))
    metrics.add_metric(name=f"{event_type}Events", unit=MetricUnit.Count, value=1)
    return entry


def hand_back(
    services: Services, case: CaseRecord, reason: str, occasion: int, wrap_up_code: str | None = None
) -> bool:
    """HandedBack once per occasion (the agent-left's stateAt, or the queued period's start). False: done before."""
    if not case.conversation_id:
        return False
    marks = read_marks(services.store, case.case_id)
    if marks.handed_back_for is not None and marks.handed_back_for >= occasion:
        return False
    record_own_event(
        services,
        case.case_id,
        case.conversation_id,
        "HandedBack",
        f"handback-{case.conversation_id}-{occasion}",
        {"reason": reason, "wrapUpCode": wrap_up_code},
        closes=reason != "agent-ended",  # the agent's end leaves the case agent_left: a new message reopens it
    )
    raise_mark(services.store, case.case_id, "handedBackFor", occasion)
    logger.info("case handed back to the bot", extra={"reason": reason})
    return True


def after_webhook_event(services: Services, case_id: str, before: LiveState, event: ContactCenterEvent) -> None:
    """Called by the intake once 8x8's event is recorded. Never raises: the sweep repeats what is lost here."""
    try:
        if event.kind is EventKind.AGENT_LEFT and not before.transfer_pending:
            case = services.store.get_case(case_id)
            if case and case.live.state is CaseState.AGENT_LEFT:
                hand_back(services, case, "agent-ended", case.live.state_at, event.detail.get("wrapUpCode"))
        elif event.kind is EventKind.CONVERSATION_IDLE and before.state is CaseState.WITH_AGENT:
            case = services.store.get_case(case_id)
            if case and case.conversation_id:
                record_own_event(
                    services,
                    case_id,
                    case.conversation_id,
                    "CustomerIdle",
                    f"idle-8x8-{case.conversation_id}-{event.occurred_at}",
                    {"source": "8x8"},
                )
    except Exception:
        logger.exception("escalation follow-up of a webhook event failed; the sweep repeats it")


def after_delivery(
    services: Services,
    case: CaseRecord,
    message_id: str,
    author_type: str,
    text: str | None,
    *,
    client_message_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    cards: list[dict[str, Any]] | None = None,
    redrive: int = 0,
) -> None:
    """8x8 took the message: CustomerMessage (the conversation as the channel wrote it) and MessageDelivered.
    Never raises: the message is delivered whatever happens here."""
    if not case.conversation_id:
        return
    try:
        at = now_ms()
        if author_type == "user":
            set_marks(services.store, case.case_id, customerActiveAt=at)
        shown = [
            {"attachmentId": a.get("attachmentId"), "fileName": a.get("fileName"), "status": "sent"}
            for a in attachments or []
        ]
        base = {"messageId": message_id, "clientMessageId": client_message_id}
        entries = [
            TimelineEntry(
                event_id=f"customer-{message_id}-{redrive}",
                type="CustomerMessage",
                conversation_id=case.conversation_id,
                occurred_at=at,
                received_at=at,
                detail=_present(
                    {
                        **base,
                        "authorType": author_type,
                        "text": text,
                        "attachments": shown or None,
                        "cards": cards or None,
                    }
                ),
            ),
            TimelineEntry(
                event_id=f"delivered-{message_id}-{redrive}",
                type="MessageDelivered",
                conversation_id=case.conversation_id,
                occurred_at=at,
                received_at=at,
                detail=_present(base),
            ),
        ]
        cases.record_own_entries(services, case.case_id, entries)  # a redelivered send records them once
    except Exception:
        logger.exception("delivery status could not be recorded; the message itself was delivered")


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
