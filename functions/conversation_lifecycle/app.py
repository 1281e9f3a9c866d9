"""Conversation lifecycle: open a case's conversation, the customer leaving, and reading cases."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge import cases
from casebridge.api import build_resolver, case_id_from_path, int_query, json_response, parse_body
from casebridge.models import OpenConversationRequest
from casebridge.observability import logger, metrics, tracer
from casebridge.services import get_services
from casebridge.views import case_view

app = build_resolver()


@app.post("/cases/<caseId>/conversation")
def open_conversation(caseId: str) -> Any:  # noqa: N803 - the path parameter's name
    case_id = case_id_from_path(caseId)
    logger.append_keys(caseId=case_id)
    request = parse_body(app, OpenConversationRequest, optional=True)
    case, created = cases.open_conversation(get_services(), case_id, request)
    return json_response(201 if created else 200, case_view(case))


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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses hold customer data: not in X-Ray
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
