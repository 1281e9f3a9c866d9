"""Webhook intake: verify, deduplicate, record durably, publish, answer. Each event takes effect once.

Order of work for an event of a known conversation: one read (case + receipt), publish, then one
transaction (receipt + timeline entry + state). Publishing first means a failure anywhere makes 8x8 retry
(the receipt is not written yet), and a receipt on file always means the event was published.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from casebridge.errors import Conflict, InvalidRequest
from casebridge.models import WebhookEvent, WebhookEventType
from casebridge.observability import logger, metrics
from casebridge.services import Services
from casebridge.state import apply_event
from casebridge.store import StaleCase, TimelineEntry, now_ms


def handle_webhook(services: Services, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Headers lower-cased, body the raw bytes. Returns the JSON answer for a 200."""
    delivery = services.verifier.verify(headers, body)
    logger.append_keys(eventId=delivery.event_id)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise InvalidRequest("webhook body is not JSON") from None
    if isinstance(payload, dict) and payload.get("eventType") == WebhookEventType.WEB_HOOK_VERIFY:
        logger.info("webhook verification request answered")
        return {"status": "verified"}
    try:
        event = WebhookEvent.model_validate(payload)
    except ValidationError as error:
        raise InvalidRequest(
            "webhook event is not a Chat API v2 event",
            details=[
                {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                for e in error.errors(include_url=False, include_input=False)
            ],
        ) from None
    logger.append_keys(conversationId=event.conversation_id)
    entry = TimelineEntry(
        event_id=delivery.event_id,
        type=event.detail_type,
        conversation_id=event.conversation_id,
        occurred_at=event.timestamp,
        received_at=now_ms(),
        detail=event.detail(),
        source_event_type=event.event_type.value,
    )
    published = False
    for _ in range(5):
        case_id, case, seen = services.store.lookup_for_webhook(
            event.conversation_id, delivery.tenant_id, delivery.event_id
        )
        if seen:
            metrics.add_metric(name="WebhookDuplicates", unit="Count", value=1)
            logger.info("duplicate webhook delivery ignored", extra={"retry": delivery.retry})
            return {"status": "duplicate"}
        if case_id is None or case is None:
            try:
                if not services.store.record_orphan_event(delivery.tenant_id, delivery.event_id, entry):
                    return {"status": "duplicate"}
            except StaleCase:
                continue  # the conversation's case was recorded meanwhile: process it normally
            logger.warning(
                "event for a conversation no case knows (yet); kept", extra={"eventType": event.event_type.value}
            )
            metrics.add_metric(name="WebhookEventsUnmatched", unit="Count", value=1)
            return {"status": "kept", "reason": "unknown conversation"}
        logger.append_keys(caseId=case_id)
        if not published:
            services.publisher.publish(case_id, [entry])
            published = True
        live = apply_event(case.live, event.event_type, event.timestamp, entry.detail)
        try:
            if not services.store.record_case_event(case, entry, live, receipt=(delivery.tenant_id, delivery.event_id)):
                return {"status": "duplicate"}
        except StaleCase:
            continue
        logger.info(
            "webhook event recorded", extra={"eventType": event.event_type.value, "stateChanged": live is not None}
        )
        metrics.add_metric(name="WebhookEventsRecorded", unit="Count", value=1)
        return {"status": "accepted"}
    raise Conflict("the case is changing fast; retry", retry_after=1)
