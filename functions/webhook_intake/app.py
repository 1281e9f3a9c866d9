"""Webhook intake: the public route 8x8 calls. Trusted only by its signature."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge import webhooks
from casebridge.business_api.http import build_resolver, json_response, raw_body
from casebridge.observability import logger, metrics, tracer
from casebridge.services import get_services

# Any Content-Type is accepted here: 8x8 sends application/json, but the signature (not the header, which it
# does not cover) is what makes a delivery trustworthy, and a 415 to a genuine event would be retried by 8x8 and
# then lost. A body that is not JSON still gets its 400 after the signature is checked.
app = build_resolver(json_bodies_only=False)


@app.post("/webhooks/8x8")
def receive_webhook() -> Any:
    event = app.current_event
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    source = event.request_context.identity.source_ip  # key-fetch budgets are kept per source
    body = raw_body(app, limit=webhooks.MAX_WEBHOOK_BODY_BYTES)
    return json_response(200, webhooks.handle_webhook(get_services(), headers, body, source=source))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses hold customer data: not in X-Ray
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
