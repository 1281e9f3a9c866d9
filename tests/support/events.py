"""The events AWS hands the functions: API Gateway REST (v1 proxy) requests, SQS batches, and 8x8 webhook bodies."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

REGION = "us-east-1"
STAGE = "v1"  # template.yaml's BusinessApi stage
WEBHOOK_RESOURCE = "/webhooks/8x8"


def api_gateway_event(
    method: str,
    resource: str,
    *,
    path_parameters: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    force_base64: bool = False,
) -> dict[str, Any]:
    """An API Gateway REST proxy event for `resource` (e.g. /cases/{caseId}/messages), as API Gateway builds it:
    a body that is not UTF-8 (or `force_base64`) arrives base64-encoded."""
    path = resource
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", value)
    text: str | None
    encoded = False
    if body is None or isinstance(body, str):
        text = body
    else:
        try:
            text = None if force_base64 else body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None:
            text, encoded = base64.b64encode(body).decode(), True
    hdrs = dict(headers or {})
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "testapi",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "test"},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def webhook_event(headers: Mapping[str, str], body: bytes, *, force_base64: bool = False) -> dict[str, Any]:
    """8x8's webhook POST as API Gateway hands it to the webhook function."""
    return api_gateway_event("POST", WEBHOOK_RESOURCE, body=body, headers=headers, force_base64=force_base64)


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """What the SQS event source mapping hands the function, from messages received with all attributes."""
    records = []
    for message in messages:
        attributes = dict(message.get("Attributes", {}))
        attributes.setdefault("ApproximateReceiveCount", "1")
        attributes.setdefault("SenderId", "test")
        attributes.setdefault("ApproximateFirstReceiveTimestamp", "0")
        attributes.setdefault("SequenceNumber", "1")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def webhook_body(event_type: str, conversation_id: str, timestamp: int | None = None, **extra: Any) -> bytes:
    """A Chat API v2 webhook body (compact JSON, as 8x8 sends it); `timestamp` defaults to now."""
    payload = {
        "eventType": event_type,
        "messageType": "AGENT" if event_type == "TEXT" else "SYSTEM",
        "conversationId": conversation_id,
        **extra,
        "timestamp": int(time.time() * 1000) if timestamp is None else timestamp,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


# The fields each event type carries besides the common ones (CONTRACT.md's examples).
EVENT_EXTRAS: dict[str, dict[str, Any]] = {
    "QUEUED": {"queueId": "101", "queueName": "Support"},
    "AGENT_JOINED": {"agentId": "agent-1", "agentName": "Alice Agent"},
    "AGENT_LEFT": {"agentId": "agent-1", "agentName": "Alice Agent"},
    "TRANSFER": {},
    "TEXT": {"agentId": "agent-1", "agentName": "Alice Agent", "message": "hello"},
}
