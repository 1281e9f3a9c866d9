"""Escalate only where someone answers: the open's `whenUnavailable` and `onQueueTimeout` options.

`"whenUnavailable": "refuse"` checks the queue's availability before any 8x8 call and answers 409
QueueUnavailable (with the availability) when it is `closed` or `no-agents`; `unknown` never refuses (metrics
down must not turn customers away on a guess). `"queue"` (the default) opens as always. The queue is the
request's routing queue, else the channel's; a script routing has no queue to ask about, so it is never refused.
"""

from __future__ import annotations

from typing import Any

import msgspec

from casebridge.business_api.models import OpenConversationRequest
from casebridge.errors import CasebridgeError
from casebridge.escalation.availability import Availability
from casebridge.escalation.marks import set_marks
from casebridge.escalation.wiring import queue_availability
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.services import Services


class QueueUnavailable(CasebridgeError):
    status_code = 409
    code = "QueueUnavailable"

    def __init__(self, availability: Availability) -> None:
        super().__init__(f"queue {availability.queue_id} is not answering now ({availability.reason})")
        self.availability = availability

    def body(self) -> dict[str, Any]:
        return {**super().body(), "availability": self.availability.view()}


def target_queue(services: Services, request: OpenConversationRequest) -> str | None:
    if request.routing is not None:
        return request.routing.id if request.routing.type == "queue" else None
    return services.settings.queue_id or None


def before_open(services: Services, case_id: str, request: OpenConversationRequest) -> OpenConversationRequest:
    """Refuses (QueueUnavailable) when asked to and nobody answers; returns the request without the escalation
    options, so they never change what is sent to 8x8 nor the open's idempotency hash."""
    if request.when_unavailable == "refuse":
        existing = services.store.get_case(case_id)
        queue_id = target_queue(services, request)
        if not (existing and existing.conversation_id) and queue_id:
            availability = queue_availability(services, queue_id)
            if availability.refusable:
                logger.info("escalation refused", extra={"queueId": queue_id, "reason": availability.reason})
                metrics.add_metric(name="EscalationsRefused", unit=MetricUnit.Count, value=1)
                raise QueueUnavailable(availability)
    return msgspec.structs.replace(request, when_unavailable=None, on_queue_timeout=None)


def after_open(services: Services, case_id: str, request: OpenConversationRequest) -> None:
    """Keeps the open's `onQueueTimeout` on the case (the timer sweep reads it)."""
    if request.on_queue_timeout is not None:
        set_marks(services.store, case_id, onQueueTimeout=request.on_queue_timeout)
