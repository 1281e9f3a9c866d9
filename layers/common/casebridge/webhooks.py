"""Webhook intake: verify, parse (per 8x8 API, at the edge), deduplicate, record durably, publish, answer.

Every verified delivery leaves a receipt holding a hash of its body, whatever the outcome: a retry of the same
event is answered as a duplicate, and the same event id with another body is a replay with a forged body (the
signature covers only a CRC32 of the body) and is refused.

Order of work for an event of a known conversation: one read (case + receipt), publish, then one transaction
(receipt + timeline entry + state). Publishing first means a failure anywhere makes 8x8 retry (the receipt is
not written yet), and a receipt on file always means the event was published.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any

from casebridge.attachments.agent_files import take_in_agent_attachments
from casebridge.clock import now_ms
from casebridge.contact_center.webhook_signature import VerifiedDelivery
from casebridge.errors import Conflict, InvalidRequest, Unauthorized
from casebridge.events import ECHO_NOTE, TIMELINE_KINDS, ContactCenterEvent, EventKind, MalformedEvent
from casebridge.kept_bodies import kept_body
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.services import Services
from casebridge.state import apply_event
from casebridge.store import StaleCase
from casebridge.store.records import CaseRecord, TimelineEntry, WebhookReceipt
from casebridge.store.table import next_on_timeline

MAX_KEPT_BODY_BYTES = 32 * 1024  # an unhandled event's body kept for operators, within DynamoDB's 400 KB item
# Kinds that go on the timeline only when they change the case (else they are kept like unhandled events).
_STATE_ONLY = frozenset({EventKind.CUSTOMER_LEFT, EventKind.CONVERSATION_IDLE})


class WebhookOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    VERIFIED = "verified"
    KEPT = "kept"  # not acted on: kept under its receipt where an operator finds it
    EARLY = "early"  # for a conversation no case knows yet: kept, and taken into the case when it is recorded
    PUBLISHED = "published"  # bus only (typing)


def handle_webhook(services: Services, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Headers lower-cased, body the raw bytes. Returns the JSON answer for a 200."""
    delivery = services.verifier.verify(headers, body)
    logger.append_keys(eventId=delivery.event_id)
    digest = hashlib.sha256(body).hexdigest()
    try:
        event = services.webhook_parser(_json(body))
    except MalformedEvent as error:
        if _keep(services, delivery, digest, body, "malformed", None) is WebhookOutcome.DUPLICATE:
            return {"status": WebhookOutcome.DUPLICATE}  # answered 400 before: 8x8's retry of it stops here
        metrics.add_metric(name="WebhookEventsMalformed", unit=MetricUnit.Count, value=1)
        raise InvalidRequest(
            f"webhook event is not a {services.settings.contact_center_api} event: {error}",
            details=[{"field": error.field_name, "message": str(error)}],
        ) from None
    if event.conversation_id:
        logger.append_keys(conversationId=event.conversation_id)
    if event.kind is EventKind.VERIFY:
        outcome = _keep(services, delivery, digest, None, "verify", event)
        logger.info("webhook verification request answered")
        return {"status": WebhookOutcome.VERIFIED if outcome is WebhookOutcome.KEPT else outcome}
    if event.kind is EventKind.UNHANDLED or event.conversation_id is None:
        return {"status": _unhandled(services, delivery, digest, body, event)}
    for _ in range(5):
        case_id, case, receipt = services.store.lookup_for_webhook(
            event.conversation_id, delivery.tenant_id, delivery.event_id
        )
        if receipt is not None:
            return {"status": _seen(receipt, digest, delivery)}
        if case_id is None or case is None:
            early = _early(services, delivery, digest, body, event)
            if early is None:
                continue  # the conversation's case was recorded meanwhile: process it normally
            if early is WebhookOutcome.EARLY:
                return {"status": WebhookOutcome.KEPT, "reason": "unknown conversation"}
            return {"status": early}
        logger.append_keys(caseId=case_id)
        applied = _apply(services, delivery, digest, body, event, case)
        if applied is None:
            continue
        return {"status": applied}
    raise Conflict("the case is changing fast; retry", retry_after=1)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise MalformedEvent("webhook body is not JSON") from None


def _receipt(
    delivery: VerifiedDelivery, digest: str, event: ContactCenterEvent | None, outcome: str, body: bytes | None
) -> WebhookReceipt:
    kept = None if body is None else kept_body(body, MAX_KEPT_BODY_BYTES)
    return WebhookReceipt(
        delivery.tenant_id,
        delivery.event_id,
        digest,
        event_type=event.source_type if event else "",
        conversation_id=event.conversation_id if event else None,
        outcome=outcome,
        kept_body=kept,
    )


def _seen(receipt: Mapping[str, Any], digest: str, delivery: VerifiedDelivery) -> WebhookOutcome:
    """A receipt is on file: a retry of the same event, or a replay of its id with another body."""
    if receipt.get("bodySha256") not in (None, digest):
        metrics.add_metric(name="WebhookReplaysRefused", unit=MetricUnit.Count, value=1)
        logger.warning("webhook event id seen before with another body: refused as a replay")
        raise Unauthorized("this event id was delivered before with another body")
    metrics.add_metric(name="WebhookDuplicates", unit=MetricUnit.Count, value=1)
    logger.info("duplicate webhook delivery ignored", extra={"retry": delivery.retry})
    return WebhookOutcome.DUPLICATE


def _keep(
    services: Services,
    delivery: VerifiedDelivery,
    digest: str,
    body: bytes | None,
    outcome: str,
    event: ContactCenterEvent | None,
) -> WebhookOutcome:
    if services.store.record_receipt(_receipt(delivery, digest, event, outcome, body)):
        return WebhookOutcome.KEPT
    return _seen_on_file(services, delivery, digest)


def _seen_on_file(services: Services, delivery: VerifiedDelivery, digest: str) -> WebhookOutcome:
    """A conditional write found the receipt already there: read it and answer as `_seen` does."""
    return _seen(services.store.get_receipt(delivery.tenant_id, delivery.event_id) or {}, digest, delivery)


def _unhandled(
    services: Services, delivery: VerifiedDelivery, digest: str, body: bytes, event: ContactCenterEvent
) -> WebhookOutcome:
    # An echo of our own post is known and needs no operator: its receipt keeps the hash (duplicates, replays)
    # but not the body, which is the customer's text again (and would make the write several WRU).
    kept = None if event.note == ECHO_NOTE else body
    outcome = _keep(services, delivery, digest, kept, "unhandled", event)
    if outcome is WebhookOutcome.KEPT:
        metrics.add_metric(name="WebhookEventsUnhandled", unit=MetricUnit.Count, value=1)
        logger.info("webhook event not acted on; kept", extra={"eventType": event.source_type, "note": event.note})
    return outcome


def _entry(delivery: VerifiedDelivery, event: ContactCenterEvent) -> TimelineEntry:
    assert event.conversation_id is not None
    return TimelineEntry(
        event_id=delivery.event_id,
        type=event.kind.value,
        conversation_id=event.conversation_id,
        occurred_at=event.occurred_at,
        received_at=now_ms(),
        detail=event.detail,
        source_event_type=event.kind.value,
    )


def _early(
    services: Services, delivery: VerifiedDelivery, digest: str, body: bytes, event: ContactCenterEvent
) -> WebhookOutcome | None:
    """An event for a conversation no case knows yet (QUEUED often beats the create's answer): kept under
    the conversation, taken into the case when it is recorded. None: the case appeared meanwhile."""
    if event.kind not in TIMELINE_KINDS:
        return _unhandled(services, delivery, digest, body, event)
    try:
        if not services.store.record_early_event(
            _receipt(delivery, digest, event, "early", None), _entry(delivery, event)
        ):
            return _seen_on_file(services, delivery, digest)
    except StaleCase:
        return None
    logger.warning("event for a conversation no case knows (yet); kept", extra={"eventType": event.source_type})
    metrics.add_metric(name="WebhookEventsEarly", unit=MetricUnit.Count, value=1)
    return WebhookOutcome.EARLY


def _apply(
    services: Services,
    delivery: VerifiedDelivery,
    digest: str,
    body: bytes,
    event: ContactCenterEvent,
    case: CaseRecord,
) -> WebhookOutcome | None:
    """Publish, then record the event with its state change. None: the case changed, read it again."""
    if event.kind is EventKind.AGENT_TYPING:
        typing = _entry(delivery, event)
        if "agentId" not in typing.detail and case.live.agent_id:
            typing = replace(typing, detail={**typing.detail, "agentId": case.live.agent_id})
        services.publisher.publish(case.case_id, [typing])  # the bus only: typing never goes on the timeline
        if not services.store.record_receipt(_receipt(delivery, digest, event, "published", None)):
            return _seen_on_file(services, delivery, digest)
        return WebhookOutcome.PUBLISHED
    if event.kind is EventKind.AGENT_MESSAGE and event.detail.get("attachments") and event.conversation_id:
        # The agent's files: casebridge references, recorded and queued for copying (8x8's URLs expire).
        # Before the publish: a failure here makes 8x8 retry, and the retry maps to the same references.
        detail = take_in_agent_attachments(services, case.case_id, event.conversation_id, event.detail)
        event = replace(event, detail=detail)
    live = apply_event(case.live, event.kind, event.occurred_at, event.detail)
    if event.kind in _STATE_ONLY and live is None:
        return _unhandled(services, delivery, digest, body, event)
    # Its sequence on the case's timeline as of this read; the write below commits it only if the case has not
    # changed since (else the case is read again, and the entry gets the next free sequence).
    entry = next_on_timeline(case, _entry(delivery, event))
    # The customer leaving is also recorded by the API's own answer (DELETE /conversation): whichever write commits
    # first is the one CustomerLeft, so it is published only once committed (through the case's outbox).
    after_commit = event.kind is EventKind.CUSTOMER_LEFT
    if not after_commit:
        services.publisher.publish(case.case_id, [entry])
    try:
        receipt = _receipt(delivery, digest, event, "accepted", None)
        recorded = services.store.record_case_event(case, entry, live, receipt=receipt, pending_publish=after_commit)
    except StaleCase:
        return None
    if not recorded:
        return _seen_on_file(services, delivery, digest)
    if after_commit:
        services.publisher.publish(case.case_id, [recorded])  # a failure leaves it on the outbox (swept)
        services.store.mark_published(case.case_id, {recorded.sort_key})
    logger.info("webhook event recorded", extra={"eventType": event.source_type, "stateChanged": live is not None})
    if event.kind in (EventKind.AGENT_LEFT, EventKind.CONVERSATION_IDLE):
        # Hand-back and 8x8's idle (casebridge.escalation); loaded only for these events.
        from casebridge.escalation.signals import after_webhook_event  # noqa: PLC0415

        after_webhook_event(services, case.case_id, case.live, event)
    metrics.add_metric(name="WebhookEventsRecorded", unit=MetricUnit.Count, value=1)
    return WebhookOutcome.ACCEPTED
