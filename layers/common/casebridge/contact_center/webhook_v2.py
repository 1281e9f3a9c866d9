"""Chat API v2's webhook dialect (notificationVersion v2.0) → ContactCenterEvent.

v2 events are flat: `{eventType, messageType, conversationId, timestamp, queueId, queueName, agentId, agentName,
message}`. Only agent messages arrive (TEXT), so there is no echo of the connector's own posts to drop.
"""

from __future__ import annotations

from typing import Any

from casebridge.events import (
    ContactCenterEvent,
    EventKind,
    compact,
    conversation_id_field,
    event_type_field,
    text_field,
    timestamp_field,
    unknown_event,
)

NOTIFICATION_VERSION = "v2.0"

_KINDS = {
    "QUEUED": EventKind.QUEUED,
    "AGENT_JOINED": EventKind.AGENT_JOINED,
    "AGENT_LEFT": EventKind.AGENT_LEFT,
    "TRANSFER": EventKind.TRANSFERRED,
    "TEXT": EventKind.AGENT_MESSAGE,
}


def parse_webhook_event(payload: Any) -> ContactCenterEvent:
    """Raises MalformedEvent for a known event type in the wrong shape; unknown types are UNHANDLED."""
    source = event_type = event_type_field(payload)
    if event_type == "WEB_HOOK_VERIFY":
        return ContactCenterEvent(EventKind.VERIFY, source)
    kind = _KINDS.get(event_type)
    if kind is None:
        return unknown_event(source, payload.get("conversationId"))
    detail = compact(
        {
            "queueId": text_field(payload.get("queueId"), "queueId", max_length=256),
            "queueName": text_field(payload.get("queueName"), "queueName", max_length=1024),
            "agentId": text_field(payload.get("agentId"), "agentId", max_length=256),
            "agentName": text_field(payload.get("agentName"), "agentName", max_length=1024),
            "text": text_field(payload.get("message"), "message"),
            # Not documented on v2 either: read when present on AGENT_LEFT.
            "wrapUpCode": text_field(payload.get("wrapUpCode"), "wrapUpCode", max_length=256)
            if kind is EventKind.AGENT_LEFT
            else None,
        }
    )
    text_field(payload.get("messageType"), "messageType", max_length=64)
    return ContactCenterEvent(
        kind,
        source,
        conversation_id=conversation_id_field(payload.get("conversationId")),
        occurred_at=timestamp_field(payload.get("timestamp")),
        detail=detail,
    )
