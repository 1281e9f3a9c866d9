"""Webhook intake: verify, parse (per 8x8 API, at the edge), deduplicate, record durably, publish, answer.

Every verified delivery leaves a receipt (casebridge.webhook_receipts): a retry of the same event is answered as a
duplicate; another body under the same event id is kept beside it as a suspect, never refused.

Order of work for an event of a known conversation: one read (case + receipts), then one transaction (receipt +
timeline entry + the case's state and outbox mark), then the publish, then the mark is taken off. Recording first
means a race between two events of one case re-reads and records again without having published anything (one
publish per recorded event), and a publish that fails answers 5xx: 8x8's retry finds the receipt, publishes what
the outbox holds, and only then answers `duplicate`. Every event answered 2xx is on the timeline and was
published; every event goes on the timeline whatever its arrival order (the order decides only the derived state,
casebridge.state, which does not depend on it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from casebridge.clock import now_ms
from casebridge.contact_center.webhook_signature import VerifiedDelivery
from casebridge.errors import Conflict, InvalidRequest
from casebridge.events import (
    ECHO_NOTE,
    MESSAGE_KINDS,
    TIMELINE_KINDS,
    ContactCenterEvent,
    EventKind,
    MalformedEvent,
    message_fingerprint,
)
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.outbox import flush_outbox, letting_go_on_failure, publish_recorded
from casebridge.services import Services
from casebridge.state import STATE_KINDS, CaseState, StateEvent, record_event
from casebridge.store import StaleCase
from casebridge.store.records import CaseRecord, TimelineEntry
from casebridge.store.table import next_on_timeline
from casebridge.webhook_receipts import (
    WebhookOutcome,
    duplicate,
    flag_conflict,
    keep,
    receipt,
    seen,
    seen_on_file,
)

__all__ = ["MAX_WEBHOOK_BODY_BYTES", "WebhookOutcome", "handle_webhook"]

# API Gateway's own payload limit: a body it passes on is never refused here for its size (the business API's
# 256 KB is a rule for its own callers). Lambda's 6 MB invocation payload is the lower limit in practice.
MAX_WEBHOOK_BODY_BYTES = 10 * 1024 * 1024


def handle_webhook(
    services: Services, headers: Mapping[str, str], body: bytes, *, source: str | None = None
) -> dict[str, Any]:
    """Headers lower-cased, body the raw bytes, source the caller's address. Returns the JSON answer for a 200."""
    delivery = services.verifier.verify(headers, body, source)
    logger.append_keys(eventId=delivery.event_id)
    digest = hashlib.sha256(body).hexdigest()
    try:
        event = services.webhook_parser(_json(body))
    except MalformedEvent as error:
        if keep(services, delivery, digest, body, "malformed", None) is WebhookOutcome.DUPLICATE:
            return {"status": WebhookOutcome.DUPLICATE}  # answered 400 before: 8x8's retry of it stops here
        metrics.add_metric(name="WebhookEventsMalformed", unit=MetricUnit.Count, value=1)
        raise InvalidRequest(
            f"webhook event is not a {services.settings.contact_center_api} event: {error}",
            details=[{"field": error.field_name, "message": str(error)}],
        ) from None
    if event.conversation_id:
        logger.append_keys(conversationId=event.conversation_id)
    if event.kind is EventKind.VERIFY:
        outcome = keep(services, delivery, digest, None, "verify", event)
        logger.info("webhook verification request answered")
        return {"status": WebhookOutcome.VERIFIED if outcome is WebhookOutcome.KEPT else outcome}
    if event.kind is EventKind.UNHANDLED or event.conversation_id is None:
        return {"status": _unhandled(services, delivery, digest, body, event)}
    flagged = False
    for _ in range(5):
        found = services.store.lookup_for_webhook(event.conversation_id, delivery.tenant_id, delivery.event_id, digest)
        if seen(found.receipt, found.body_receipt, digest):
            if found.case_id:
                _publish_outbox(services, found.case_id)  # a publish that failed before this retry
            return {"status": duplicate(delivery)}
        conflict = found.receipt is not None  # another body came first under this event id
        if found.receipt is not None and not flagged:
            flag_conflict(services, delivery, found.receipt, digest)
            flagged = True
        if found.case_id is None or found.case is None:
            early = _early(services, delivery, digest, body, event, conflict)
            if early is None:
                continue  # the conversation's case was recorded meanwhile, or a receipt appeared: go round
            if early is WebhookOutcome.EARLY:
                return {"status": WebhookOutcome.KEPT, "reason": "unknown conversation"}
            return {"status": early}
        logger.append_keys(caseId=found.case_id)
        applied = _apply(services, delivery, digest, body, event, found.case, conflict)
        if applied is None:
            continue
        return {"status": applied}
    raise Conflict("the case is changing fast; retry", retry_after=1)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise MalformedEvent("webhook body is not JSON") from None


def _unhandled(
    services: Services, delivery: VerifiedDelivery, digest: str, body: bytes, event: ContactCenterEvent
) -> WebhookOutcome:
    # An echo of our own post is known and needs no operator: its receipt keeps the hash (duplicates, replays)
    # but not the body, which is the customer's text again (and would make the write several WRU).
    kept = None if event.note == ECHO_NOTE else body
    outcome = keep(services, delivery, digest, kept, "unhandled", event)
    if outcome is WebhookOutcome.KEPT:
        metrics.add_metric(name="WebhookEventsUnhandled", unit=MetricUnit.Count, value=1)
        logger.info("webhook event not acted on; kept", extra={"eventType": event.source_type, "note": event.note})
    return outcome


def _entry(delivery: VerifiedDelivery, event: ContactCenterEvent, digest: str, conflict: bool) -> TimelineEntry:
    assert event.conversation_id is not None
    event_id, detail = delivery.event_id, event.detail
    if conflict:
        # Its own id, so a consumer that drops repeats by eventId does not drop it as a repeat of the first body.
        event_id, detail = f"{delivery.event_id}:{digest[:16]}", {**detail, "bodyConflict": True}
    return TimelineEntry(
        event_id=event_id,
        type=event.kind.value,
        conversation_id=event.conversation_id,
        occurred_at=event.occurred_at,
        received_at=now_ms(),
        detail=detail,
        source_event_type=event.kind.value,
    )


def _without_fingerprint_fields(event: ContactCenterEvent) -> ContactCenterEvent:
    """A user/bot message that casebridge did not post: a SystemMessage (published, on the timeline)."""
    return replace(event, kind=EventKind.SYSTEM_MESSAGE)


def _early(
    services: Services,
    delivery: VerifiedDelivery,
    digest: str,
    body: bytes,
    event: ContactCenterEvent,
    conflict: bool,
) -> WebhookOutcome | None:
    """An event for a conversation no case knows yet (QUEUED often beats the create's answer): kept under
    the conversation, taken into the case when it is recorded. None: go round again (the case appeared
    meanwhile, or another body of this event id got its receipt first)."""
    if event.kind is EventKind.PARTICIPANT_MESSAGE:
        # casebridge posts only once the case knows its conversation: nothing before that is provably ours.
        event = _without_fingerprint_fields(event)
    if event.kind not in TIMELINE_KINDS:
        return _unhandled(services, delivery, digest, body, event)
    try:
        if not services.store.record_early_event(
            receipt(delivery, digest, event, "early", None, conflict=conflict),
            _entry(delivery, event, digest, conflict),
        ):
            return seen_on_file(services, delivery, digest)
    except StaleCase:
        return None
    logger.warning("event for a conversation no case knows (yet); kept", extra={"eventType": event.source_type})
    metrics.add_metric(name="WebhookEventsEarly", unit=MetricUnit.Count, value=1)
    return WebhookOutcome.EARLY


LEFT_ALREADY_NOTE = "the customer's leaving is on the case already (recorded by casebridge)"


def _left_through_casebridge(case: CaseRecord) -> bool:
    """Closed by the connector's own customer-leaves (a reset point), and not by an 8x8 report since."""
    live = case.live
    return live.state is CaseState.CLOSED and not any(e.kind is EventKind.CUSTOMER_LEFT for e in live.events)


def _apply(
    services: Services,
    delivery: VerifiedDelivery,
    digest: str,
    body: bytes,
    event: ContactCenterEvent,
    case: CaseRecord,
    conflict: bool,
) -> WebhookOutcome | None:
    """Record the event with its state change, then publish it. None: the case changed, read it again."""
    if event.kind is EventKind.AGENT_TYPING:
        typing = _entry(delivery, event, digest, conflict)
        if "agentId" not in typing.detail and case.live.agent_id:
            typing = replace(typing, detail={**typing.detail, "agentId": case.live.agent_id})
        services.publisher.publish(case.case_id, [typing])  # the bus only: typing never goes on the timeline
        made = receipt(delivery, digest, event, "published", None, conflict=conflict)
        if not services.store.record_receipt(made):
            return seen_on_file(services, delivery, digest) or WebhookOutcome.PUBLISHED
        return WebhookOutcome.PUBLISHED
    if event.kind is EventKind.CUSTOMER_LEFT and _left_through_casebridge(case):
        # The API's own answer (DELETE /conversation) recorded this departure: one fact, one CustomerLeft. Kept
        # under its receipt (no body: nothing for an operator). A race with that write is settled by the case's
        # version: the loser reads the case again and lands here, or the API finds the case closed.
        outcome = keep(services, delivery, digest, None, "unhandled", replace(event, note=LEFT_ALREADY_NOTE))
        logger.info("customer left already recorded by casebridge; 8x8's report kept")
        return outcome
    if event.kind is EventKind.PARTICIPANT_MESSAGE:
        fingerprint = message_fingerprint(
            event.detail.get("text"), [str(a["id"]) for a in event.detail.get("attachments") or []]
        )
        if services.store.was_posted(case.case_id, fingerprint):
            return _unhandled(services, delivery, digest, body, replace(event, note=ECHO_NOTE))
        event = _without_fingerprint_fields(event)
        metrics.add_metric(name="WebhookForeignParticipantMessages", unit=MetricUnit.Count, value=1)
    if event.kind in MESSAGE_KINDS and event.detail.get("attachments") and event.conversation_id:
        from casebridge.attachments.agent_files import take_in_agent_attachments  # noqa: PLC0415 - files only

        # The files: casebridge references, recorded and queued for copying (8x8's URLs expire). Before the
        # write: a failure here makes 8x8 retry, and the retry maps to the same references.
        event = replace(
            event, detail=take_in_agent_attachments(services, case.case_id, event.conversation_id, event.detail)
        )
    # Its sequence on the case's timeline as of this read; the write below commits it only if the case has not
    # changed since (else the case is read again, and the entry gets the next free sequence).
    entry = next_on_timeline(case, _entry(delivery, event, digest, conflict))
    live = None
    if event.kind in STATE_KINDS:
        live = record_event(case.live, StateEvent.of(event.kind, event.occurred_at, entry.event_id, event.detail))
    try:
        made = receipt(delivery, digest, event, "accepted", None, conflict=conflict)
        recorded = services.store.record_case_event(case, entry, live, receipt=made, pending_publish=True)
    except StaleCase:
        return None
    if recorded is None:
        return seen_on_file(services, delivery, digest)
    logger.info("webhook event recorded", extra={"eventType": event.source_type, "stateChanged": live is not None})
    with letting_go_on_failure(services, case.case_id, [recorded]):  # 8x8's retry publishes it then
        if event.kind in (EventKind.AGENT_LEFT, EventKind.CONVERSATION_IDLE):
            # Hand-back and 8x8's idle (casebridge.escalation); loaded only for these events.
            from casebridge.escalation.signals import after_webhook_event  # noqa: PLC0415

            after_webhook_event(services, case.case_id, case.live, event)
    metrics.add_metric(name="WebhookEventsRecorded", unit=MetricUnit.Count, value=1)
    publish_recorded(services, case.case_id, [recorded])
    return WebhookOutcome.ACCEPTED


def _publish_outbox(services: Services, case_id: str) -> None:
    """What a recorded delivery could not publish (its publish failed, or it died): published before 8x8 is told
    `duplicate`, so an event 8x8 stops retrying has reached the bus."""
    case = services.store.get_case(case_id)
    if case is not None:
        flush_outbox(services, case)
