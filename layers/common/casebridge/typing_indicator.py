"""Typing indicators. The customer's or bot's typing goes to 8x8 (Chat Gateway `/typing`) fire and forget: a
failure is logged and answered 202 with a warning, never queued or retried (an indicator minutes late is worse
than none). The agent's typing comes the other way as `AgentTyping` on the bus (casebridge.webhooks)."""

from __future__ import annotations

from casebridge.attachments.storage import require_gateway
from casebridge.business_api.models import TypingRequest
from casebridge.business_api.views import TypingNotDeliveredView
from casebridge.errors import CaseNotFound, Conflict, ContactCenterError
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.services import Services


def send_typing(services: Services, case_id: str, request: TypingRequest) -> TypingNotDeliveredView | None:
    """None: 8x8 shows the indicator (204). A view: 8x8 failed; the caller answers 202 with it."""
    require_gateway(services, "thinking indicators" if request.kind == "thinking" else "typing indicators")
    case = services.store.get_case(case_id)
    if case is None:
        raise CaseNotFound(f"case {case_id} does not exist")
    if not case.conversation_id:
        raise Conflict("the case has no 8x8 conversation yet: there is nobody to show typing to")
    try:
        if request.kind == "thinking":
            services.contact_center.send_thinking(case.conversation_id)
        else:
            services.contact_center.send_typing(case.conversation_id, request.author_type or "user")
    except ContactCenterError as error:
        logger.warning(
            "typing indicator not delivered; not retried",
            extra={"errorCode": error.code, "upstreamStatus": error.upstream_status},
        )
        metrics.add_metric(name="TypingNotDelivered", unit=MetricUnit.Count, value=1)
        return {
            "caseId": case_id,
            "status": "not_delivered",
            "warning": {"code": error.code, "message": error.message},
        }
    metrics.add_metric(name="TypingSent", unit=MetricUnit.Count, value=1)
    return None
