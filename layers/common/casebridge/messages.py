"""Outbound messages: accepted onto the case's FIFO group at once, delivered to 8x8 in order.

Retries live here and only here: a failed delivery is deferred on the queue (capped exponential backoff
with full jitter, or 8x8's Retry-After) instead of sleeping in the Lambda. After the retry budget, or on an
error retrying cannot fix, the message goes to the dead-letter queue and the business gets MessageFailed.

No accepted message reaches the dead-letter queue any other way: the sender dead-letters a message itself
(failed record + MessageFailed) before SQS's maxReceiveCount could move it silently, and template.yaml keeps
BatchSize * MaxSendAttempts below that count.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from casebridge.attachments.storage import require_gateway
from casebridge.attachments.uploads import check_for_message
from casebridge.business_api.models import OpenConversationRequest, PostMessageRequest, Routing, validate
from casebridge.business_api.views import MessageAcceptedView
from casebridge.cases import open_conversation, take_in_opening_of
from casebridge.clock import now_ms, sleep
from casebridge.contact_center.base import CHAT_GATEWAY_V1
from casebridge.errors import ContactCenterError, ReusedClientMessageId, StoreBusy
from casebridge.escalation.signals import after_delivery
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.outbound_content import send_to_contact_center
from casebridge.outbound_queue import OutboundMessage
from casebridge.outbox import flush_outbox, publish_recorded
from casebridge.services import Services
from casebridge.settings import Settings
from casebridge.state import needs_reopen
from casebridge.store import StaleCase
from casebridge.store.records import CaseRecord, MessageRecord, MessageStatus, TimelineEntry

_NAMESPACE = uuid.UUID("6f1d2c1e-8a5b-4a53-9a0e-6c1f3b7d2e10")
RECORD_FAILED_TRIES = 20  # a MessageFailed write racing the case's other writes
SEND_TIME_MARGIN_MS = 2_000  # DynamoDB writes around one send
# The slowest transfer a delivery is budgeted for (S3 into 8x8's upload): 4 MiB/s, in bytes per millisecond.
TRANSFER_FLOOR_BYTES_PER_MS = 4 * 1024 * 1024 // 1000


class RetryLater(Exception):
    """Delivery failed in a way a later attempt may fix; the message was deferred on the queue."""


def _text_hash(request: PostMessageRequest) -> str:
    """What a clientMessageId stands for. A text message hashes as it always did (claims made before rich
    messages existed still match); attachments and cards are added only when present."""
    content = f"{request.author_type}\n{request.text}"
    if request.is_rich:
        rich = {"attachments": request.attachments, "cards": [c.wire() for c in request.cards]}
        content += "\n" + json.dumps(rich, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(content.encode()).hexdigest()


def accept_message(services: Services, case_id: str, request: PostMessageRequest) -> MessageAcceptedView:
    # Attachments and cards: refused now if the configured 8x8 API cannot carry them, and each attachment checked
    # against its uploaded object, so nothing accepted fails later for a reason known today.
    attachments: list[dict[str, Any]] = []
    if request.is_rich:
        require_gateway(services, "attachments and cards")
        attachments = check_for_message(services, case_id, request.attachments)
    # A client-chosen id makes the accept idempotent: the same id maps to the same message and dedup id;
    # the same id with another text is refused (an idempotency key reused for a different request).
    if request.client_message_id:
        message_id = str(uuid.uuid5(_NAMESPACE, f"{case_id}/{request.client_message_id}"))
        earlier = services.store.claim_client_message_id(
            case_id, request.client_message_id, message_id, _text_hash(request)
        )
        if earlier is not None and earlier.get("textSha256") != _text_hash(request):
            raise ReusedClientMessageId(
                "clientMessageId was used before for a different message; use a new clientMessageId"
            )
    else:
        message_id = str(uuid.uuid4())
    message = OutboundMessage(
        caseId=case_id,
        messageId=message_id,
        text=request.text or "",
        authorType=request.author_type,
        acceptedAt=now_ms(),
        attachments=attachments,
        cards=[card.wire() for card in request.cards],
        clientMessageId=request.client_message_id,
    )
    services.queue.enqueue(message, deduplication_id=message_id)
    logger.info(
        "message accepted",
        extra={
            "messageId": message_id,
            "authorType": request.author_type,
            "attachments": len(attachments),
            "cards": len(request.cards),
        },
    )
    metrics.add_metric(name="MessagesAccepted", unit=MetricUnit.Count, value=1)
    return {"caseId": case_id, "messageId": message_id, "status": "accepted"}


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt of one message: what `_failed` needs to decide retry or dead letter."""

    message: OutboundMessage
    number: int
    receipt_handle: str
    ambiguous_before: int
    conversation_id: str | None
    queue_message_id: str = ""


@dataclass(frozen=True)
class QueuedDelivery:
    """One record of an SQS batch: its message, or (message None) the body no message could be read from."""

    message: OutboundMessage | None
    receive_count: int
    receipt_handle: str
    group_id: str
    queue_message_id: str = ""  # SQS's id of this queue message
    body: str = ""
    unreadable: str = ""  # why the body is not a message


def delivery_budget_ms(settings: Settings, message: OutboundMessage) -> int:
    """The time one delivery may take, all of it: the post (twice: a retry after a token refresh, or the reopen's
    routing call), and per attachment S3's answer, 8x8's upload answer and the bytes at the slowest rate budgeted."""
    call_ms = int(settings.http_timeout_seconds * 1000)
    calls = 2 + 2 * len(message.attachments)
    size = sum(int(a.get("size") or 0) for a in message.attachments)
    return calls * call_ms + size // TRANSFER_FLOOR_BYTES_PER_MS + SEND_TIME_MARGIN_MS


def deliver_batch(
    services: Services, deliveries: Sequence[QueuedDelivery], remaining_ms: Callable[[], int]
) -> list[str]:
    """Deliver a FIFO batch in order. Returns the receipt handles to give back to the queue (failed, held
    back behind a failure of their case, or not attempted for lack of time): untouched, they come again."""
    settings = services.settings
    # A delivery longer than the whole invocation can never be covered: it may start while the invocation has
    # spent no more than the margin (the most time it will ever get), instead of circling to the receive limit;
    # never with less time than a plain post needs.
    whole_ms: int | None = None  # the time left at the first check: the invocation's whole
    post_ms = int(settings.http_timeout_seconds * 2 * 1000) + SEND_TIME_MARGIN_MS
    failed_groups: set[str] = set()
    give_back: list[str] = []
    for delivery in deliveries:
        if delivery.message is None:
            try:
                _dead_letter_unreadable(services, delivery)
            except Exception:
                logger.exception("unreadable queue body not dead-lettered yet; it returns to the queue")
                give_back.append(delivery.receipt_handle)
                failed_groups.add(delivery.group_id)
            continue
        logger.append_keys(caseId=delivery.message.caseId, messageId=delivery.message.messageId)
        if delivery.receive_count >= settings.outbound_max_receive_count:
            # One more return and SQS would dead-letter it silently: do it here, with its record and event.
            _dead_letter_unsent(services, delivery, "received too often without being delivered")
            continue
        if delivery.group_id in failed_groups:
            give_back.append(delivery.receipt_handle)  # held back: its case's earlier message failed
            continue
        left_ms = remaining_ms()
        whole_ms = left_ms - SEND_TIME_MARGIN_MS if whole_ms is None else whole_ms
        if left_ms < max(min(delivery_budget_ms(settings, delivery.message), whole_ms), post_ms):
            # The invocation would end mid-delivery (an upload or the post) and the message would be re-sent as
            # ambiguous: leave it, and the rest of its case behind it.
            metrics.add_metric(name="MessagesNotAttemptedNoTime", unit=MetricUnit.Count, value=1)
            give_back.append(delivery.receipt_handle)
            failed_groups.add(delivery.group_id)
            continue
        try:
            deliver_message(
                services,
                delivery.message,
                delivery.receive_count,
                delivery.receipt_handle,
                queue_message_id=delivery.queue_message_id,
            )
        except Exception as error:
            if not isinstance(error, RetryLater):
                logger.exception("delivery failed unexpectedly; the message returns to the queue")
            failed_groups.add(delivery.group_id)
            give_back.append(delivery.receipt_handle)
    return give_back


def deliver_message(
    services: Services,
    message: OutboundMessage,
    receive_count: int,
    receipt_handle: str,
    *,
    queue_message_id: str = "",
) -> str:
    """Send one accepted message to 8x8. Returns the outcome: sent, duplicate or failed."""
    logger.append_keys(caseId=message.caseId, messageId=message.messageId)
    case, record = services.store.lookup_for_delivery(message.caseId, message.messageId)
    if record and record.status is MessageStatus.SENT:
        logger.info("message already delivered; queue redelivery ignored")
        return "duplicate"
    if _already_dead_lettered(services, case, record, message, queue_message_id):
        logger.info("message already dead-lettered; queue redelivery ignored")
        return "failed"
    ambiguous_before = record.ambiguous_attempts if record else 0
    # The budget counts attempts made, not queue receives. A redriven message starts afresh.
    fresh = record is None or record.status is MessageStatus.FAILED
    number = 1 if fresh or record is None else record.attempts + 1
    if record and record.status is MessageStatus.SENDING:
        # An earlier attempt ended between posting to 8x8 and learning the outcome (the Lambda crashed or
        # timed out): 8x8 may have the message, so sending again may show it twice. Counted, like a timeout.
        ambiguous_before += 1
        metrics.add_metric(name="MessagesAmbiguous", unit=MetricUnit.Count, value=1)
        logger.warning("an earlier attempt ended without an outcome; 8x8 may have the message")
    attempt = Attempt(
        message, number, receipt_handle, ambiguous_before, case.conversation_id if case else None, queue_message_id
    )
    try:
        if case is None or not case.conversation_id:
            case, _ = open_conversation(services, message.caseId, OpenConversationRequest())
        elif case.take_in_due(now_ms()):
            _take_in_opening_best_effort(services, case)
        assert case.conversation_id is not None
        attempt = replace(attempt, conversation_id=case.conversation_id)
        logger.append_keys(conversationId=case.conversation_id)
        services.store.record_message(
            message.caseId,
            MessageRecord(
                message.messageId, MessageStatus.SENDING, number, ambiguous_before, message.redrive, queue_message_id
            ),
            case.conversation_id,
        )
        _reopen_if_needed(services, case, message)
        send_to_contact_center(services, case.conversation_id, message)
    except ContactCenterError as error:
        return _failed(services, attempt, error)
    try:
        services.store.record_message(
            message.caseId,
            MessageRecord(
                message.messageId, MessageStatus.SENT, number, ambiguous_before, message.redrive, queue_message_id
            ),
            case.conversation_id,
        )
    except Exception:
        # 8x8 has the message. Failing now would make the queue deliver it again (a certain duplicate);
        # the record only guards against queue redelivery, so the message is done either way.
        logger.exception("message delivered to 8x8 but its record could not be written")
        metrics.add_metric(name="MessageRecordFailures", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="MessagesDelivered", unit=MetricUnit.Count, value=1)
    logger.info("message delivered to 8x8", extra={"attempt": number, "receiveCount": receive_count})
    after_delivery(
        services,
        case,
        message.messageId,
        message.authorType,
        message.text or None,
        client_message_id=message.clientMessageId,
        attachments=message.attachments,
        cards=message.cards,
        redrive=message.redrive,
    )
    return "sent"


def _take_in_opening_best_effort(services: Services, case: CaseRecord) -> None:
    """The opener recorded the conversation but not (yet) what follows it (its writes lost to the case's other
    writers, or it died): a message of the case does it. Never at the message's cost: the case stays marked, and
    the next request or the outbox sweeper does it."""
    try:
        take_in_opening_of(services, case)
    except Exception:
        logger.warning("ConversationOpened and early events not taken in yet; left to the next request or the sweep")


def _already_dead_lettered(
    services: Services,
    case: CaseRecord | None,
    record: MessageRecord | None,
    message: OutboundMessage,
    queue_message_id: str,
) -> bool:
    """Dead-lettered already and not redriven since: never sent again without an operator's redrive. Its
    MessageFailed may still wait on the case's outbox, so it is published now.

    Redriven: scripts/redrive.py bumps the body's redrive number; SQS's own DLQ redrive (and any tool that moves
    the body back as it is) cannot, but what it puts on the queue is another SQS message than the one that was
    dead-lettered (the dead-letter queue only ever holds copies the sender sent), so the id tells."""
    if not (record and record.status is MessageStatus.FAILED and message.redrive <= record.redrive):
        return False
    if record.queue_message_id and queue_message_id and queue_message_id != record.queue_message_id:
        logger.info("dead-lettered message moved back to the queue; delivering it again")
        return False
    if record.parked_event is not None:
        _record_failed(services, message.caseId, record, record.parked_event.conversation_id, record.parked_event)
        return True
    if case is not None:
        flush_outbox(services, case)
    return True


def _reopen_if_needed(services: Services, case: CaseRecord, message: OutboundMessage) -> None:
    """No live interaction (the agent left, or the customer left): this message starts a new one.

    On Chat API v2 the message alone re-queues (documented). The Chat Gateway docs do not say (GATEWAY.md §7), so
    on the Gateway the first message after the end also routes the conversation again (PATCH assignment to the
    case's routing or last queue): right whether 8x8 re-queues on a message or needs the routing set again.
    The case remembers which message asked, so a retry of that message routes again and later ones do not."""
    claimed = _claim_reopen(services, case, message.messageId)
    if claimed is None:
        return
    case, live = claimed, claimed.live
    if services.contact_center.api != CHAT_GATEWAY_V1:
        return
    routing = validate(Routing, case.routing) if case.routing else None
    if routing is None and live.queue_id:
        routing = Routing(type="queue", id=live.queue_id)
    if routing is None:
        logger.warning("no queue known to route the reopened conversation to; relying on 8x8's default")
        return
    assert case.conversation_id is not None
    services.contact_center.route(case.conversation_id, routing)
    metrics.add_metric(name="ConversationsRerouted", unit=MetricUnit.Count, value=1)
    logger.info("conversation routed again to reopen the case", extra={"routingType": routing.type})


REOPEN_CLAIM_ATTEMPTS = 5


def _claim_reopen(services: Services, case: CaseRecord, message_id: str) -> CaseRecord | None:
    """The case with its reopen asked by this message, or None when it needs none (or another message asked).
    The request is checked against the version read, and 8x8's late events about the end (its user left, agent
    left, idle) may be recorded meanwhile: read the case again and ask again, or the reopen is lost and 8x8's new
    QUEUED is ignored."""
    for _ in range(REOPEN_CLAIM_ATTEMPTS):
        live = case.live
        if not needs_reopen(live) or (live.reopen_requested and case.reopen_by != message_id):
            return None
        if live.reopen_requested or services.store.request_reopen(case, message_id):
            return case
        fresh = services.store.get_case(case.case_id)
        if fresh is None:
            return None
        case = fresh
    raise StaleCase(f"case {case.case_id} kept changing while its reopen was asked")


def _failed(services: Services, attempt: Attempt, error: ContactCenterError) -> str:
    settings = services.settings
    message = attempt.message
    ambiguous = attempt.ambiguous_before + (1 if error.ambiguous else 0)
    if error.ambiguous:
        # 8x8 may have taken the message: sending again may show it twice. Counted, never hidden.
        metrics.add_metric(name="MessagesAmbiguous", unit=MetricUnit.Count, value=1)
        logger.warning("8x8 may have received the message before the failure", extra={"attempt": attempt.number})
    if error.retryable and attempt.number < settings.max_send_attempts:
        # The attempt's outcome is known now (failed, or counted as ambiguous): replaces the 'sending' marker.
        services.store.record_message(
            message.caseId,
            MessageRecord(
                message.messageId,
                MessageStatus.PENDING,
                attempt.number,
                ambiguous,
                message.redrive,
                attempt.queue_message_id,
            ),
            attempt.conversation_id,
        )
        delay = (
            error.retry_after
            if error.retry_after is not None
            else backoff_seconds(attempt.number, settings.retry_base_seconds, settings.retry_cap_seconds)
        )
        services.queue.defer(attempt.receipt_handle, delay)
        logger.warning(
            "delivery failed; retry deferred",
            extra={"attempt": attempt.number, "delayS": round(delay, 2), "upstreamStatus": error.upstream_status},
        )
        raise RetryLater(error.message) from error
    reason = f"{error.message} (upstream {error.upstream_status} {error.upstream_code or ''})".strip()
    record = MessageRecord(
        message.messageId, MessageStatus.FAILED, attempt.number, ambiguous, message.redrive, attempt.queue_message_id
    )
    dead_letter(services, message, record, attempt.conversation_id, reason)
    logger.error("message moved to the dead-letter queue", extra={"attempt": attempt.number})
    return "failed"


def _dead_letter_unreadable(services: Services, delivery: QueuedDelivery) -> None:
    """A body no message can be read from: parked on the dead-letter queue as it is, with the reason, so the rest
    of the batch goes on. When it still names its case and message, the business gets MessageFailed too."""
    key = delivery.queue_message_id or uuid.uuid4().hex
    services.queue.dead_letter(delivery.body, delivery.group_id, f"dlq-unreadable-{key}", delivery.unreadable)
    metrics.add_metric(name="MessagesUnreadable", unit=MetricUnit.Count, value=1)
    logger.error("unreadable queue body dead-lettered", extra={"reason": delivery.unreadable})
    named = _names_of(delivery.body)
    if named is None:
        return
    case_id, message_id = named
    logger.append_keys(caseId=case_id, messageId=message_id)
    message = OutboundMessage(caseId=case_id, messageId=message_id, text="", authorType="", acceptedAt=0)
    case, record = services.store.lookup_for_delivery(case_id, message_id)
    if record and record.status is MessageStatus.SENT:
        return
    failed = MessageRecord(message_id, MessageStatus.FAILED, 0, 0, 0, delivery.queue_message_id)
    _record_dead_letter(services, message, failed, case.conversation_id if case else None, delivery.unreadable)


def _names_of(body: str) -> tuple[str, str] | None:
    """The caseId and messageId an unreadable body still carries, if any."""
    try:
        values = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(values, dict):
        return None
    case_id, message_id = values.get("caseId"), values.get("messageId")
    if isinstance(case_id, str) and isinstance(message_id, str) and case_id and message_id:
        return case_id, message_id
    return None


def _dead_letter_unsent(services: Services, delivery: QueuedDelivery, reason: str) -> None:
    message = delivery.message
    assert message is not None
    case, record = services.store.lookup_for_delivery(message.caseId, message.messageId)
    if record and record.status is MessageStatus.SENT:
        return  # delivered after all: nothing to dead-letter
    if _already_dead_lettered(services, case, record, message, delivery.queue_message_id):
        return
    attempts = record.attempts if record and record.status is not MessageStatus.FAILED else 0
    failed = MessageRecord(
        message.messageId,
        MessageStatus.FAILED,
        attempts,
        record.ambiguous_attempts if record else 0,
        message.redrive,
        delivery.queue_message_id,
    )
    dead_letter(services, message, failed, case.conversation_id if case else None, reason)
    logger.error(
        "message dead-lettered before SQS could do it silently", extra={"receiveCount": delivery.receive_count}
    )


def dead_letter(
    services: Services, message: OutboundMessage, record: MessageRecord, conversation_id: str | None, reason: str
) -> None:
    """DLQ first (the message is safe there), then the failed record with its MessageFailed on the case's
    outbox in one transaction, then the publish. A failure after the DLQ makes the queue deliver the message
    again: it finds `failed` and only publishes, never sends.

    Each dead-lettering is its own: the DLQ's deduplication id and the event id name the queue message being
    dead-lettered, so a message moved back and failing again is parked (and reported) again, while a retry of
    this same dead-lettering is deduplicated by SQS."""
    key = record.queue_message_id or uuid.uuid4().hex
    services.queue.dead_letter(message.to_json(), message.caseId, f"dlq-{message.messageId}-{key}", reason)
    _record_dead_letter(services, message, record, conversation_id, reason)


def _record_dead_letter(
    services: Services, message: OutboundMessage, record: MessageRecord, conversation_id: str | None, reason: str
) -> None:
    key = record.queue_message_id or uuid.uuid4().hex
    failed = TimelineEntry(
        event_id=f"failed-{message.messageId}-{message.redrive}-{key}",
        type="MessageFailed",
        conversation_id=conversation_id or "",
        occurred_at=now_ms(),
        received_at=now_ms(),
        detail={
            "messageId": message.messageId,
            "attempts": record.attempts,
            "reason": reason,
            "ambiguousAttempts": record.ambiguous_attempts,
        },
    )
    _record_failed(services, message.caseId, record, conversation_id, failed)
    metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=1)


def _record_failed(
    services: Services, case_id: str, record: MessageRecord, conversation_id: str | None, entry: TimelineEntry
) -> None:
    """The failed record and its MessageFailed through the case's outbox, like every other event: recorded with
    its outbox mark in one transaction, then published (a failed publish is the sweeper's or the next request's).
    A case never recorded gets its item with the entry."""
    for attempt in range(RECORD_FAILED_TRIES):
        case = services.store.get_case(case_id) or CaseRecord(case_id)
        try:
            recorded = services.store.record_message_failed(
                case, replace(record, parked_event=None), conversation_id, entry
            )
        except StaleCase:
            sleep(random.uniform(0, 0.01 * (attempt + 1)))
            continue
        publish_recorded(services, case_id, [recorded])
        return
    # The case keeps changing: the failed record alone stops a resend, and holds the event until the queue's
    # redelivery (this error gives the message back) can put it on the timeline.
    services.store.record_message(case_id, replace(record, parked_event=entry), conversation_id)
    raise StoreBusy("the case is changing fast; MessageFailed is recorded on the next delivery", retry_after=1)
