"""Case lifecycle: open the case's conversation (once), the customer leaving, and reading a case."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from casebridge.errors import CaseNotFound, Conflict
from casebridge.models import CaseState, OpenConversationRequest, WebhookEventType
from casebridge.observability import logger, metrics
from casebridge.services import Services
from casebridge.state import LiveState, apply_event, customer_left
from casebridge.store import CaseRecord, StaleCase, TimelineEntry, now_ms

OPENING_LEASE_MS = 30_000  # longer than an 8x8 create call can take
WAIT_FOR_PEER_S = 8.0


def open_conversation(services: Services, case_id: str, request: OpenConversationRequest) -> tuple[CaseRecord, bool]:
    """The case's conversation, created at most once. Returns (case, created now)."""
    store = services.store
    case = store.get_case(case_id)
    if case and case.conversation_id:
        return case, False
    deadline = time.monotonic() + WAIT_FOR_PEER_S
    while True:
        if store.claim_opening(case_id, OPENING_LEASE_MS):
            return _create(services, case_id, request), True
        # Another request holds the claim: wait for its conversation instead of opening a second one.
        time.sleep(0.1)
        case = store.get_case(case_id)
        if case and case.conversation_id:
            return case, False
        if time.monotonic() > deadline:
            raise Conflict("the case's conversation is being opened by another request; retry shortly", retry_after=1)


def _create(services: Services, case_id: str, request: OpenConversationRequest) -> CaseRecord:
    channel_id = request.channel_id or services.settings.channel_id
    try:
        conversation_id = services.contact_center.create_conversation(
            channel_id, request.customer.to_contact_center(case_id), request.history
        )
    except Exception:
        services.store.release_claim(case_id)
        raise
    services.store.record_conversation(case_id, conversation_id, channel_id)
    logger.append_keys(conversationId=conversation_id)
    logger.info("conversation opened for case", extra={"channelId": channel_id})
    metrics.add_metric(name="ConversationsOpened", unit="Count", value=1)
    opened = TimelineEntry(
        event_id=f"opened-{conversation_id}",
        type="ConversationOpened",
        conversation_id=conversation_id,
        occurred_at=now_ms(),
        received_at=now_ms(),
        detail={"channelId": channel_id},
    )
    record_and_publish(services, case_id, opened, lambda live: None)
    adopt_early_events(services, case_id, conversation_id)
    case = services.store.get_case(case_id)
    assert case is not None
    return case


def record_and_publish(
    services: Services,
    case_id: str,
    entry: TimelineEntry,
    transition: Callable[[LiveState], LiveState | None],
    known: CaseRecord | None = None,
) -> CaseRecord:
    """Timeline entry + state change, retried on concurrent updates, then published.
    `known`: the case as the caller just read it, used for the first try instead of reading it again."""
    for _ in range(5):
        case, known = known or services.store.get_case(case_id), None
        if case is None:
            raise CaseNotFound(f"case {case_id} does not exist")
        live: LiveState | None = transition(case.live)
        try:
            services.store.record_case_event(case, entry, live)
        except StaleCase:
            continue
        services.publisher.publish(case_id, [entry])
        return case
    raise Conflict("the case is changing fast; retry shortly", retry_after=1)


def adopt_early_events(services: Services, case_id: str, conversation_id: str) -> None:
    """Events 8x8 sent before the case knew its conversation (QUEUED usually) join the case now."""
    for entry in sorted(services.store.orphan_events(conversation_id), key=lambda e: e.sort_key):
        source = entry.source_event_type or ""
        event_type = WebhookEventType(source) if source in WebhookEventType.__members__ else None

        def transition(
            live: LiveState, entry: TimelineEntry = entry, event_type: WebhookEventType | None = event_type
        ) -> LiveState | None:
            return apply_event(live, event_type, entry.occurred_at, entry.detail) if event_type else None

        record_and_publish(services, case_id, entry, transition)
        services.store.drop_orphan(entry)
        logger.info("early webhook event adopted", extra={"eventId": entry.event_id})


def require_case(services: Services, case_id: str) -> CaseRecord:
    case = services.store.get_case(case_id)
    if case is None:
        raise CaseNotFound(f"case {case_id} does not exist")
    return case


def customer_leaves(services: Services, case_id: str) -> CaseRecord:
    """The customer left. Idempotent: leaving a closed case changes nothing."""
    case = require_case(services, case_id)
    if not case.conversation_id:
        raise Conflict("the case's conversation is still being opened; retry shortly", retry_after=1)
    logger.append_keys(conversationId=case.conversation_id)
    if case.live.state is CaseState.CLOSED:
        return case
    services.contact_center.customer_leaves(case.conversation_id)
    left_at = now_ms()
    entry = TimelineEntry(
        event_id=f"left-{case.conversation_id}-{left_at}",
        type="CustomerLeft",
        conversation_id=case.conversation_id,
        occurred_at=left_at,
        received_at=left_at,
    )
    record_and_publish(services, case_id, entry, lambda live: customer_left(live, left_at), known=case)
    logger.info("customer left the conversation")
    return require_case(services, case_id)


def case_timeline(services: Services, case_id: str, after: str | None, limit: int) -> dict[str, Any]:
    require_case(services, case_id)
    entries, cursor = services.store.list_timeline(case_id, after, limit)
    return {"caseId": case_id, "events": [e.to_view(case_id) for e in entries], "next": cursor}
