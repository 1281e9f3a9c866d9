"""The signed webhook sender: batches of the channel webhook FIFO queue (one group per case), delivered in each
case's timeline order with retries and a dead-letter queue (casebridge.push.webhook)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge.observability import logger, metrics, tracer
from casebridge.push.webhook import WebhookJob, deliver_batch
from casebridge.services import get_services


def parse_job(body: str, message_id: str, receipt_handle: str) -> WebhookJob | None:
    try:
        job = json.loads(body)
        case_id, sequence, event = job["caseId"], int(job["sequence"]), job["event"]
        if not isinstance(case_id, str) or not isinstance(event, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return None
    return WebhookJob(case_id, sequence, event, message_id, receipt_handle)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    jobs = []
    for record in SQSEvent(event).records:
        job = parse_job(record.body, record.message_id, record.receipt_handle)
        if job is None:
            logger.error("webhook queue message is not a job; dropped", extra={"messageId": record.message_id})
            continue
        jobs.append(job)
    failed = deliver_batch(get_services(), jobs, context.get_remaining_time_in_millis)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
