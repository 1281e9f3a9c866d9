"""The escalation's timers: EventBridge runs this every minute (template.yaml, a Schedule event). One sweep over
the table's sparse index decides what is due (casebridge.escalation.timers): queue timeouts and hand-backs, wait
updates, customer idle and its end, transcripts. Nothing sleeps: a case waits in the table, not in a Lambda."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge.escalation import timers
from casebridge.observability import MetricUnit, logger, metrics, tracer
from casebridge.services import get_services


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = timers.sweep(get_services(), remaining_ms=context.get_remaining_time_in_millis)
    metrics.add_metric(name="SweptCases", unit=MetricUnit.Count, value=report.cases)
    if report.failures:
        metrics.add_metric(name="SweepFailures", unit=MetricUnit.Count, value=report.failures)
    return {"cases": report.cases, "events": report.events, "failures": report.failures, "left": report.left}
