"""Outbound messages: the API accepts a case's message onto its FIFO group; the queue's batches deliver it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge import messages
from casebridge.api import build_resolver, case_id_from_path, json_response, parse_body
from casebridge.models import PostMessageRequest
from casebridge.observability import logger, metrics, tracer
from casebridge.outbound_queue import OutboundMessage
from casebridge.services import get_services

app = build_resolver()
# A failure holds back the rest of its case's group (order kept) but not other cases.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch whose every message was deferred is not a crash: report them in batchItemFailures (their retry delay
# is already set on the queue) instead of failing the invocation, which would count as a Lambda error.
processor.raise_on_entire_batch_failure = False


@app.post("/cases/<caseId>/messages")
def post_message(caseId: str) -> Any:  # noqa: N803 - the path parameter's name
    case_id = case_id_from_path(caseId)
    logger.append_keys(caseId=case_id)
    request = parse_body(app, PostMessageRequest)
    return json_response(202, messages.accept_message(get_services(), case_id, request))


def deliver(record: SQSRecord) -> str:
    message = OutboundMessage.from_json(record.body)
    receive_count = int(record.attributes.approximate_receive_count or "1")
    return messages.deliver_message(get_services(), message, receive_count, record.receipt_handle)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return dict(process_partial_response(event=event, record_handler=deliver, processor=processor, context=context))
    return app.resolve(event, context)
