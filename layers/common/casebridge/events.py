"""8x8's webhook events as one domain type, whichever API sent them.

Each 8x8 API has its own webhook dialect, parsed at the edge (contact_center/webhook_v2.py and
contact_center/webhook_gateway.py). Everything after the parser (dedup, state, timeline, publish) sees only
`ContactCenterEvent` and knows no 8x8 API.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31: larger is no time, and DynamoDB keeps 38 digits at most
MAX_ID_LENGTH = 256


# The note of a Gateway MESSAGE that echoes the connector's own user/bot post: known, deliberately not acted on.
ECHO_NOTE = "echo"


class EventKind(StrEnum):
    """What an 8x8 event means for a case. The value is the business event type (timeline and bus)."""

    QUEUED = "Queued"
    AGENT_JOINED = "AgentJoined"
    AGENT_LEFT = "AgentLeft"
    TRANSFERRED = "Transferred"
    AGENT_MESSAGE = "AgentMessage"
    CUSTOMER_LEFT = "CustomerLeft"  # the customer left on the 8x8 side (Gateway MEMBERS_CHANGED user left)
    CONVERSATION_IDLE = "ConversationIdle"  # Gateway: no live interaction any more
    SYSTEM_MESSAGE = "SystemMessage"  # Gateway: a message no agent wrote and casebridge did not post
    AGENT_TYPING = "AgentTyping"  # published, never on the timeline
    MESSAGE_READ = "MessageRead"  # Gateway ACTIVITY read-receipts: the agent side read up to readAt
    # Gateway: a user/bot message. Casebridge's own post echoed back (kept, not acted on) or, when not provably
    # ours, a SYSTEM_MESSAGE: never a business event type itself.
    PARTICIPANT_MESSAGE = "ParticipantMessage"
    VERIFY = "WebhookVerify"  # 8x8 checks the URL when the webhook is added
    UNHANDLED = "Unhandled"  # an event the connector does not act on: answered 2xx and kept for operators


# Kinds that go on the timeline (and may move the case's live state).
TIMELINE_KINDS = frozenset(
    {
        EventKind.QUEUED,
        EventKind.AGENT_JOINED,
        EventKind.AGENT_LEFT,
        EventKind.TRANSFERRED,
        EventKind.AGENT_MESSAGE,
        EventKind.SYSTEM_MESSAGE,
        EventKind.CUSTOMER_LEFT,
        EventKind.CONVERSATION_IDLE,
    }
)
MESSAGE_KINDS = frozenset({EventKind.AGENT_MESSAGE, EventKind.SYSTEM_MESSAGE})


def message_fingerprint(text: str | None, attachment_ids: list[str] | tuple[str, ...] = ()) -> str:
    """What casebridge remembers of each message it posts to a conversation, and what a Gateway MESSAGE is
    matched against to be recognised as the echo of that post: a hash of its text (whitespace-normalised) and
    8x8's ids of its attachments. Never the text itself."""
    canonical = json.dumps({"text": " ".join((text or "").split()), "attachments": sorted(attachment_ids)})
    return hashlib.sha256(canonical.encode()).hexdigest()


class MalformedEvent(ValueError):
    """A known 8x8 event type whose body does not have the documented shape."""

    def __init__(self, message: str, field_name: str = "body") -> None:
        super().__init__(message)
        self.field_name = field_name


@dataclass(frozen=True)
class ContactCenterEvent:
    kind: EventKind
    source_type: str  # 8x8's eventType (and ACTIVITY's data.name), for logs, metrics and operators
    conversation_id: str | None = None
    occurred_at: int = 0  # 8x8's clock, epoch ms
    detail: dict[str, Any] = field(default_factory=dict)  # normalised business fields (ids as strings)
    note: str | None = None  # why an event is unhandled (ECHO_NOTE: the echo of the connector's own post)


# ---- small validators shared by the dialect parsers --------------------------------------------------------


def text_field(value: Any, name: str, *, required: bool = False, max_length: int | None = None) -> str | None:
    """A string (or an integer, as 8x8 sometimes sends ids). `max_length` bounds ids and 8x8's vocabulary; a
    message text has none: a genuine event is never refused for its size (the body's own limit bounds it, and
    a timeline entry too large for its DynamoDB item is recorded with its text cut, casebridge.store.item_size)."""
    if value is None:
        if required:
            raise MalformedEvent(f"{name} is required", name)
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedEvent(f"{name} must be a string", name)
    text = str(value)
    if required and not text:
        raise MalformedEvent(f"{name} must not be empty", name)
    if max_length is not None and len(text) > max_length:
        raise MalformedEvent(f"{name} is longer than {max_length} characters", name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON allows lone surrogates that UTF-8 (and DynamoDB) cannot carry
        raise MalformedEvent(f"{name} must be valid Unicode (no lone surrogates)", name) from None
    return text


def event_type_field(payload: Any) -> str:
    """The `eventType` of a webhook body (both dialects' envelope); MalformedEvent when the body is no event."""
    if not isinstance(payload, dict):
        raise MalformedEvent("webhook body must be a JSON object")
    event_type = payload.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("eventType is required", "eventType")
    return text_field(event_type, "eventType", max_length=128) or ""


def conversation_id_field(value: Any) -> str:
    text = text_field(value, "conversationId", required=True, max_length=MAX_ID_LENGTH)
    assert text is not None
    return text


def timestamp_field(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMESTAMP_MS:
        raise MalformedEvent("timestamp must be epoch milliseconds", "timestamp")
    return int(value)


def unknown_event(source: str, conversation: Any) -> ContactCenterEvent:
    """An event type casebridge does not know: kept whatever its envelope (the lists are extensible), under its
    conversation when it names one that could be an id."""
    valid = isinstance(conversation, str) and 0 < len(conversation) <= MAX_ID_LENGTH
    return ContactCenterEvent(
        EventKind.UNHANDLED,
        source,
        conversation_id=conversation if valid else None,
        note="event type not handled by casebridge",
    )


def compact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}
