"""The channel WebSocket (API Gateway WebSocket API: $connect, $disconnect, message, typing, resume, $default)
and the REST route that hands out its tokens (`POST /cases/{caseId}/channel-tokens`, API key)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from casebridge.business_api.http import build_resolver, case_id_from_path, json_response
from casebridge.cases import require_case
from casebridge.errors import CasebridgeError
from casebridge.observability import logger, metrics, tracer
from casebridge.push import socket, tokens
from casebridge.push.connections import Connections
from casebridge.services import get_services

app = build_resolver()


@app.post("/cases/<caseId>/channel-tokens")
def channel_token(caseId: str) -> Any:  # noqa: N803 - the path parameter's name
    case_id = case_id_from_path(caseId)
    logger.append_keys(caseId=case_id)
    services = get_services()
    require_case(services, case_id)
    return json_response(201, tokens.issue(services.settings, case_id))


def socket_event(event: dict[str, Any]) -> dict[str, Any]:
    context = event["requestContext"]
    route, connection_id = context.get("routeKey"), str(context.get("connectionId"))
    logger.append_keys(connectionId=connection_id, route=route)
    services = get_services()
    if route == "$connect":
        query = event.get("queryStringParameters") or {}
        try:
            socket.connect(services, connection_id, query.get("token"), query.get("after"))
        except CasebridgeError as error:
            # API Gateway refuses the handshake with this status; the browser only learns that it failed.
            logger.warning("widget connection refused", extra={"errorCode": error.code, "status": error.status_code})
            return {"statusCode": error.status_code, "body": json.dumps(error.body())}
        return {"statusCode": 200}
    if route == "$disconnect":
        socket.disconnect(services, connection_id)
        return {"statusCode": 200}
    answer = socket.handle_action(
        services, Connections(services.settings.channel_connections_url), connection_id, event.get("body")
    )
    # The route response ($default) sends this body back on the socket.
    return {"statusCode": 200, "body": json.dumps(answer, separators=(",", ":"))}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # answers hold message text: not in X-Ray
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.set_correlation_id(event.get("requestContext", {}).get("requestId"))
    if event.get("requestContext", {}).get("connectionId"):
        return socket_event(event)
    return app.resolve(event, context)
