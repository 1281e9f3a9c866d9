"""Conversation lifecycle: open a case's conversation, the customer leaving, and reading cases (and their
attachments)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge import cases
from casebridge.attachments import download
from casebridge.attachments.errors import AttachmentNotFound
from casebridge.attachments.storage import require_gateway
from casebridge.business_api.http import build_resolver, case_and_body, case_id_from_path, int_query, json_response
from casebridge.business_api.models import OpenConversationRequest
from casebridge.business_api.views import case_view
from casebridge.errors import InvalidRequest
from casebridge.escalation import decision, transcript, wiring
from casebridge.observability import logger, metrics, tracer
from casebridge.services import get_services

app = build_resolver()
ATTACHMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
QUEUE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # as a routing queue id


@app.post("/cases/<caseId>/conversation")
def open_conversation(caseId: str) -> Any:  # noqa: N803 - the path parameter's name
    case_id, request = case_and_body(app, caseId, OpenConversationRequest, optional=True)
    services = get_services()
    if any(message.cards for message in request.history):
        require_gateway(services, "cards in history")  # a 400 before any call to 8x8
    plain = decision.before_open(services, case_id, request)  # 409 QueueUnavailable when asked to refuse
    case, created = cases.open_for_caller(services, case_id, plain)
    decision.after_open(services, case_id, request)
    return json_response(201 if created else 200, case_view(case))


@app.get("/cases/<caseId>/transcript")
def case_transcript(caseId: str) -> Any:  # noqa: N803
    case_id = case_id_from_path(caseId)
    logger.append_keys(caseId=case_id)
    wanted = app.current_event.get_query_string_value("format") or "json"
    if wanted not in ("json", "text"):
        raise InvalidRequest("'format' must be json or text")
    services = get_services()
    case = cases.read_case(services, case_id)
    built = transcript.case_transcript(services, case_id, case.conversation_id)
    if wanted == "text":
        return Response(
            status_code=200, content_type="text/plain; charset=utf-8", body=transcript.as_text(built),
            headers={"Cache-Control": "no-store"},
        )  # fmt: skip
    return json_response(200, built, headers={"Cache-Control": "no-store"})


@app.get("/queues/<queueId>/availability")
def queue_availability(queueId: str) -> Any:  # noqa: N803
    queue_id = unquote(queueId)
    if not QUEUE_ID.fullmatch(queue_id):
        raise InvalidRequest("queueId must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    logger.append_keys(queueId=queue_id)
    answer = wiring.queue_availability(get_services(), queue_id).view()
    return json_response(200, answer, headers={"Cache-Control": "no-store"})


@app.delete("/cases/<caseId>/conversation")
def customer_leaves(caseId: str) -> Any:  # noqa: N803
    case_id = case_id_from_path(caseId)
    logger.append_keys(caseId=case_id)
    return json_response(200, case_view(cases.customer_leaves(get_services(), case_id)))


@app.get("/cases/<caseId>")
def get_case(caseId: str) -> Any:  # noqa: N803
    case_id = case_id_from_path(caseId)
    return json_response(200, case_view(cases.read_case(get_services(), case_id)))


@app.get("/cases/<caseId>/events")
def case_events(caseId: str) -> Any:  # noqa: N803
    case_id = case_id_from_path(caseId)
    limit = int_query(app, "limit", default=50, low=1, high=100)
    after = app.current_event.get_query_string_value("after")
    return json_response(200, cases.case_timeline(get_services(), case_id, after, limit))


@app.get("/cases/<caseId>/attachments/<attachmentId>")
def get_attachment(caseId: str, attachmentId: str) -> Any:  # noqa: N803
    case_id = case_id_from_path(caseId)
    logger.append_keys(caseId=case_id)
    attachment_id = unquote(attachmentId)
    if not ATTACHMENT_ID.fullmatch(attachment_id):
        raise AttachmentNotFound(f"case {case_id} has no attachment {attachment_id[:64]!r}")
    found = download.download(get_services(), case_id, attachment_id)
    # A redirect to the file (a fresh S3 URL, short-lived); the body says the same for clients that do not follow.
    return json_response(302, found, headers={"Location": found["url"], "Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses hold customer data: not in X-Ray
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
