"""Outbound messages: the API accepts a case's message onto its FIFO group; the queue's batches deliver it.
Also the routes that serve sending: attachment upload URLs, the typing and thinking indicators, read receipts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent, SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge import messages, typing_indicator
from casebridge.attachments import uploads
from casebridge.business_api.http import build_resolver, case_and_body, json_response
from casebridge.business_api.models import AttachmentUploadRequest, PostMessageRequest, ReadRequest, TypingRequest
from casebridge.escalation import receipts
from casebridge.observability import logger, metrics, tracer
from casebridge.outbound_queue import OutboundMessage, UnreadableMessage
from casebridge.services import get_services

app = build_resolver()


@app.post("/cases/<caseId>/messages")
def post_message(caseId: str) -> Any:  # noqa: N803 - the path parameter's name
    case_id, request = case_and_body(app, caseId, PostMessageRequest)
    return json_response(202, messages.accept_message(get_services(), case_id, request))


@app.post("/cases/<caseId>/attachments")
def create_attachment(caseId: str) -> Any:  # noqa: N803
    case_id, request = case_and_body(app, caseId, AttachmentUploadRequest)
    return json_response(201, uploads.create_upload(get_services(), case_id, request))


@app.post("/cases/<caseId>/typing")
def send_typing(caseId: str) -> Any:  # noqa: N803
    case_id, request = case_and_body(app, caseId, TypingRequest, optional=True)
    not_delivered = typing_indicator.send_typing(get_services(), case_id, request)
    if not_delivered is None:
        return Response(status_code=204, body="")
    return json_response(202, not_delivered)


@app.post("/cases/<caseId>/read")
def mark_read(caseId: str) -> Any:  # noqa: N803
    case_id, request = case_and_body(app, caseId, ReadRequest, optional=True)
    receipts.send_read(get_services(), case_id, request)
    return Response(status_code=204, body="")


def deliver_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """An SQS FIFO batch, in order. A failure holds back the rest of its case's group (order kept) but not other
    cases; what is given back goes in batchItemFailures (a deferred retry is not a Lambda error). Powertools'
    FIFO processor cannot also stop for the time left or dead-letter a message before SQS would, hence this."""
    records = list(SQSEvent(event).records)
    deliveries = [_queued(record) for record in records]
    handles = messages.deliver_batch(get_services(), deliveries, context.get_remaining_time_in_millis)
    ids = {record.receipt_handle: record.message_id for record in records}
    return {"batchItemFailures": [{"itemIdentifier": ids[handle]} for handle in handles]}


def _queued(record: SQSRecord) -> messages.QueuedDelivery:
    """Each record on its own: a body that is not a message is carried with the reason (and dead-lettered), it
    does not fail the batch."""
    try:
        message: OutboundMessage | None = OutboundMessage.from_json(record.body)
        unreadable = ""
    except UnreadableMessage as error:
        message, unreadable = None, str(error)
    return messages.QueuedDelivery(
        message=message,
        receive_count=int(record.attributes.approximate_receive_count or "1"),
        receipt_handle=record.receipt_handle,
        group_id=record.attributes.message_group_id or record.message_id,
        queue_message_id=record.message_id,
        body=record.body,
        unreadable=unreadable,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses hold message text: keep them out of X-Ray
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return deliver_batch(event, context)
    # The API Gateway correlation id applies to API requests only, not to SQS batches.
    logger.set_correlation_id(event.get("requestContext", {}).get("requestId"))
    return app.resolve(event, context)
