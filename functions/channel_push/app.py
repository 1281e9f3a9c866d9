"""The channel fan-out: an EventBridge rule on the case bus invokes it with each case event; it pushes the event
to the case's widget connections and queues it for the signed webhook (casebridge.push.fanout)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge.observability import logger, metrics, tracer
from casebridge.push.connections import Connections
from casebridge.push.fanout import fan_out
from casebridge.services import get_services


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    detail = event.get("detail")
    if event.get("source") != "casebridge" or not isinstance(detail, dict):
        logger.warning("not a case event; ignored", extra={"source": event.get("source")})
        return {"posted": 0}
    services = get_services()
    # A failure raises: EventBridge delivers the event again (the rule's retry policy, then its dead-letter queue).
    return {"posted": fan_out(services, Connections(services.settings.channel_connections_url), detail)}
