"""The outbox sweeper: EventBridge runs this every minute (template.yaml, a Schedule event). It publishes what a
case's outbox has held longer than a short delay (casebridge.outbox_sweeper), so every recorded event reaches the
bus even when nobody touches its case again."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge.observability import logger, metrics, tracer
from casebridge.outbox_sweeper import sweep_outbox
from casebridge.services import get_services


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = sweep_outbox(get_services())
    return {
        "pending": report.pending,
        "swept": report.swept,
        "failures": report.failures,
        "oldestPendingMs": report.oldest_pending_ms,
    }
