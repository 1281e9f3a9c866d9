"""Webhook receipts: every verified delivery leaves one, keyed by 8x8's event id, holding a hash of its body.

A retry of the same event (same id, same body) is answered as a duplicate. 8x8's signature covers only a CRC32 of
the body, so someone holding a delivery's headers could send another body with the same CRC first. Such a second
body under an event id is never refused (the genuine one may be the second): it gets its own receipt, keyed by its
hash and flagged `bodyConflict`, the first receipt is flagged too, and the conflict is counted
(`WebhookBodyConflicts`) and logged for an operator. Receipts keep no personal data (casebridge.kept_bodies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import Any

from casebridge.contact_center.webhook_signature import VerifiedDelivery
from casebridge.events import ContactCenterEvent
from casebridge.kept_bodies import kept_body
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.services import Services
from casebridge.store.records import WebhookReceipt

MAX_KEPT_BODY_BYTES = 32 * 1024  # an unhandled event's body kept for operators, within DynamoDB's 400 KB item


class WebhookOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    VERIFIED = "verified"
    KEPT = "kept"  # not acted on: kept under its receipt where an operator finds it
    EARLY = "early"  # for a conversation no case knows yet: kept, and taken into the case when it is recorded
    PUBLISHED = "published"  # bus only (typing)


def receipt(
    delivery: VerifiedDelivery,
    digest: str,
    event: ContactCenterEvent | None,
    outcome: str,
    body: bytes | None,
    *,
    conflict: bool = False,
) -> WebhookReceipt:
    return WebhookReceipt(
        delivery.tenant_id,
        delivery.event_id,
        digest,
        event_type=event.source_type if event else "",
        conversation_id=event.conversation_id if event else None,
        outcome=outcome,
        kept_body=None if body is None else kept_body(body, MAX_KEPT_BODY_BYTES),
        body_conflict=conflict,
    )


def seen(first: Mapping[str, Any] | None, this_body: Mapping[str, Any] | None, digest: str) -> bool:
    """This body of this event is on file (under the event id's receipt, or its own after a conflict)."""
    if this_body is not None:
        return True
    return first is not None and first.get("bodySha256") in (None, digest)


def duplicate(delivery: VerifiedDelivery) -> WebhookOutcome:
    metrics.add_metric(name="WebhookDuplicates", unit=MetricUnit.Count, value=1)
    logger.info("duplicate webhook delivery ignored", extra={"retry": delivery.retry})
    return WebhookOutcome.DUPLICATE


def seen_on_file(services: Services, delivery: VerifiedDelivery, digest: str) -> WebhookOutcome | None:
    """A conditional write found a receipt there: DUPLICATE when it is this body's, None when another body got
    there first (the caller goes round again, now as a conflict)."""
    store = services.store
    first = store.get_receipt(delivery.tenant_id, delivery.event_id)
    this_body = store.get_receipt(delivery.tenant_id, delivery.event_id, digest)
    return duplicate(delivery) if seen(first, this_body, digest) else None


def flag_conflict(services: Services, delivery: VerifiedDelivery, first: Mapping[str, Any], digest: str) -> None:
    """Another body came under an event id that is on file: both are suspect, one is forged."""
    services.store.flag_body_conflict(delivery.tenant_id, delivery.event_id)
    metrics.add_metric(name="WebhookBodyConflicts", unit=MetricUnit.Count, value=1)
    logger.warning(
        "webhook event id delivered with two bodies: both kept, flagged bodyConflict for an operator",
        extra={
            "firstBodySha256": str(first.get("bodySha256", ""))[:16],
            "bodySha256": digest[:16],
            "retry": delivery.retry,
        },
    )


def keep(
    services: Services,
    delivery: VerifiedDelivery,
    digest: str,
    body: bytes | None,
    outcome: str,
    event: ContactCenterEvent | None,
) -> WebhookOutcome:
    """A receipt alone (verify, unhandled, malformed): KEPT, or DUPLICATE when this body is on file."""
    store = services.store
    made = receipt(delivery, digest, event, outcome, body)
    if store.record_receipt(made):
        return WebhookOutcome.KEPT
    first = store.get_receipt(delivery.tenant_id, delivery.event_id)
    if first is None or first.get("bodySha256") in (None, digest):
        return duplicate(delivery)
    if not store.record_receipt(replace(made, body_conflict=True)):
        return duplicate(delivery)
    flag_conflict(services, delivery, first, digest)
    return WebhookOutcome.KEPT
