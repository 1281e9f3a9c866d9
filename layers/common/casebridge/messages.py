"""Outbound messages: accepted onto the case's FIFO group at once, delivered to 8x8 in order.

Retries live here and only here: a failed delivery is deferred on the queue (capped exponential backoff
with full jitter, or 8x8's Retry-After) instead of sleeping in the Lambda. After the retry budget, or on an
error retrying cannot fix, the message goes to the dead-letter queue and the business gets MessageFailed.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from casebridge.cases import open_conversation, record_and_publish
from casebridge.errors import ContactCenterError
from casebridge.models import OpenConversationRequest, PostMessageRequest
from casebridge.observability import logger, metrics
from casebridge.outbound_queue import OutboundMessage
from casebridge.services import Services
from casebridge.store import MessageRecord, TimelineEntry, now_ms

_NAMESPACE = uuid.UUID("6f1d2c1e-8a5b-4a53-9a0e-6c1f3b7d2e10")


class RetryLater(Exception):
    """Delivery failed in a way a later attempt may fix; the message was deferred on the queue."""


def accept_message(services: Services, case_id: str, request: PostMessageRequest) -> dict[str, Any]:
    # A client-chosen id makes the accept idempotent: the same id maps to the same message and dedup id.
    if request.client_message_id:
        message_id = str(uuid.uuid5(_NAMESPACE, f"{case_id}/{request.client_message_id}"))
    else:
        message_id = str(uuid.uuid4())
    message = OutboundMessage(
        caseId=case_id, messageId=message_id, text=request.text, authorType=request.author_type, acceptedAt=now_ms()
    )
    services.queue.enqueue(message, deduplication_id=message_id)
    logger.info("message accepted", extra={"messageId": message_id, "authorType": request.author_type})
    metrics.add_metric(name="MessagesAccepted", unit="Count", value=1)
    return {"caseId": case_id, "messageId": message_id, "status": "accepted"}


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def deliver_message(services: Services, message: OutboundMessage, receive_count: int, receipt_handle: str) -> str:
    """Send one accepted message to 8x8. Returns the outcome: sent, duplicate or failed."""
    logger.append_keys(caseId=message.caseId, messageId=message.messageId)
    case, record = services.store.lookup_for_delivery(message.caseId, message.messageId)
    if record and record.status == "sent":
        logger.info("message already delivered; queue redelivery ignored")
        return "duplicate"
    ambiguous_before = record.ambiguous_attempts if record else 0
    # The budget counts attempts made, not queue receives: in a FIFO group, a message held back behind a failing
    # one of its case is received again without being attempted. A redriven (failed) message starts afresh.
    attempt = record.attempts + 1 if record and record.status in ("sending", "pending") else 1
    if record and record.status == "sending":
        # An earlier attempt ended between posting to 8x8 and learning the outcome (the Lambda crashed or
        # timed out): 8x8 may have the message, so sending again may show it twice. Counted, like a timeout.
        ambiguous_before += 1
        metrics.add_metric(name="MessagesAmbiguous", unit="Count", value=1)
        logger.warning("an earlier attempt ended without an outcome; 8x8 may have the message")
    try:
        if case is None or not case.conversation_id:
            case, _ = open_conversation(services, message.caseId, OpenConversationRequest())
        assert case.conversation_id is not None
        logger.append_keys(conversationId=case.conversation_id)
        services.store.record_message(
            message.caseId,
            MessageRecord(message.messageId, "sending", attempt, ambiguous_before),
            case.conversation_id,
        )
        services.contact_center.send_message(case.conversation_id, message.text, message.authorType)
    except ContactCenterError as error:
        return _failed(
            services,
            message,
            error,
            attempt,
            receipt_handle,
            ambiguous_before,
            case.conversation_id if case else None,
        )
    try:
        services.store.record_message(
            message.caseId,
            MessageRecord(message.messageId, "sent", attempt, ambiguous_before),
            case.conversation_id,
        )
    except Exception:
        # 8x8 has the message. Failing now would make the queue deliver it again (a certain duplicate);
        # the record only guards against queue redelivery, so the message is done either way.
        logger.exception("message delivered to 8x8 but its record could not be written")
        metrics.add_metric(name="MessageRecordFailures", unit="Count", value=1)
    metrics.add_metric(name="MessagesDelivered", unit="Count", value=1)
    logger.info("message delivered to 8x8", extra={"attempt": attempt, "receiveCount": receive_count})
    return "sent"


def _failed(
    services: Services,
    message: OutboundMessage,
    error: ContactCenterError,
    attempt: int,
    receipt_handle: str,
    ambiguous_before: int,
    conversation_id: str | None,
) -> str:
    settings = services.settings
    ambiguous = ambiguous_before + (1 if error.ambiguous else 0)
    if error.ambiguous:
        # 8x8 may have taken the message: sending again may show it twice. Counted, never hidden.
        metrics.add_metric(name="MessagesAmbiguous", unit="Count", value=1)
        logger.warning("8x8 may have received the message before the failure", extra={"attempt": attempt})
    if error.retryable and attempt < settings.max_send_attempts:
        # The attempt's outcome is known now (failed, or counted as ambiguous): replaces the 'sending' marker.
        services.store.record_message(
            message.caseId, MessageRecord(message.messageId, "pending", attempt, ambiguous), conversation_id
        )
        delay = (
            error.retry_after
            if error.retry_after is not None
            else backoff_seconds(attempt, settings.retry_base_seconds, settings.retry_cap_seconds)
        )
        services.queue.defer(receipt_handle, delay)
        logger.warning(
            "delivery failed; retry deferred",
            extra={"attempt": attempt, "delayS": round(delay, 2), "upstreamStatus": error.upstream_status},
        )
        raise RetryLater(error.message) from error
    reason = f"{error.message} (upstream {error.upstream_status} {error.upstream_code or ''})".strip()
    services.queue.dead_letter(message, reason)
    services.store.record_message(
        message.caseId, MessageRecord(message.messageId, "failed", attempt, ambiguous), conversation_id
    )
    failed = TimelineEntry(
        event_id=f"failed-{message.messageId}",
        type="MessageFailed",
        conversation_id=conversation_id or "",
        occurred_at=now_ms(),
        received_at=now_ms(),
        detail={
            "messageId": message.messageId,
            "attempts": attempt,
            "reason": reason,
            "ambiguousAttempts": ambiguous,
        },
    )
    case = services.store.get_case(message.caseId)
    if case is not None:
        record_and_publish(services, message.caseId, failed, lambda live: None, known=case)
    else:
        services.publisher.publish(message.caseId, [failed])
    metrics.add_metric(name="MessagesFailed", unit="Count", value=1)
    logger.error("message moved to the dead-letter queue", extra={"attempt": attempt})
    return "failed"
