"""Agent attachment copier: 8x8's file (pre-signed URL, or the Gateway's content endpoint once the URL expired)
streamed into the stack's bucket, off the webhook's critical path. Fed by the copy queue (SQS standard, its own
dead-letter queue); a job that fails returns to the queue and is tried again until done."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge.attachments.copier import copy_agent_attachment
from casebridge.observability import logger, metrics, tracer
from casebridge.services import get_services


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in SQSEvent(event).records:
        try:
            job = json.loads(record.body)
            if not isinstance(job, dict) or not {"caseId", "attachmentId"} <= set(job):
                raise ValueError("not a copy job")
        except ValueError:
            logger.error("copy queue message is not a copy job; dropped", extra={"messageId": record.message_id})
            continue
        receive_count = int(record.attributes.approximate_receive_count or "1")
        try:
            copy_agent_attachment(get_services(), job, receive_count)
        except Exception:
            logger.exception("attachment copy failed; the job returns to the queue", extra={"receive": receive_count})
            failures.append({"itemIdentifier": record.message_id})
        finally:
            logger.remove_keys(["caseId", "attachmentId"])
    return {"batchItemFailures": failures}
