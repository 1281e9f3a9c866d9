"""Chat Gateway post-agent assignment (ESCALATION.md §4), registered right after the conversation is created:
once the agent's part ends, 8x8 hands the conversation to the stack's own webhook, so it returns to the bot side
in 8x8 too. The stack's webhook is the provisioned one (or PostAgentWebhookId with an existing channel); without
one, or on Chat API v2 (which has none), HandedBack alone tells the channel.

A failure is logged and never fails the open: the conversation exists, and HandedBack still comes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from casebridge.contact_center.base import CHAT_GATEWAY_V1
from casebridge.errors import CasebridgeError
from casebridge.observability import MetricUnit, logger, metrics

if TYPE_CHECKING:
    from casebridge.services import Services

MAX_TOTAL_MINUTES = 60  # the bot phase after the agent ends, at most (8x8's range 20-600)


def after_conversation_created(services: Services, conversation_id: str) -> None:
    settings = services.settings
    if services.contact_center.api != CHAT_GATEWAY_V1 or not settings.post_agent_webhook_id:
        return
    try:
        services.contact_center.assign_post_agent(
            conversation_id, settings.post_agent_webhook_id, MAX_TOTAL_MINUTES, settings.customer_idle_minutes
        )
        metrics.add_metric(name="PostAgentAssignments", unit=MetricUnit.Count, value=1)
    except CasebridgeError as error:
        logger.warning("post-agent assignment not registered", extra={"errorCode": error.code})
        metrics.add_metric(name="PostAgentAssignmentsFailed", unit=MetricUnit.Count, value=1)
