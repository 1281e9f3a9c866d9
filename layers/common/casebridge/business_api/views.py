"""Every shape the business sees, in one place: the API's answers and the events on the bus and timeline.

TypedDicts, not models: they cost nothing at cold start. `event_json_schema()` documents the events from the
same table (docs/event-schema.json is generated from it, and a test keeps the two equal).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from casebridge.state import LiveState
from casebridge.store.records import CaseRecord, TimelineEntry


class AgentView(TypedDict):
    id: str
    name: str | None  # Chat Gateway v1 has no agent names: always null there


class QueueView(TypedDict):
    id: str
    name: str | None


class CaseView(TypedDict):
    caseId: str
    conversationId: str | None
    channelId: str | None
    state: str  # open | queued | with_agent | agent_left | closed
    agent: AgentView | None
    queue: QueueView | None
    transferPending: bool
    createdAt: int
    updatedAt: int
    stateChangedAt: int | None


class MessageAcceptedView(TypedDict):
    caseId: str
    messageId: str
    status: str  # accepted


class AttachmentUploadView(TypedDict):
    """POST /cases/{caseId}/attachments: PUT the file to uploadUrl with uploadHeaders before expiresAt."""

    attachmentId: str
    uploadUrl: str
    uploadMethod: str  # PUT
    uploadHeaders: dict[str, str]
    expiresAt: int


class AttachmentDownloadView(TypedDict):
    """GET /cases/{caseId}/attachments/{attachmentId}: also the 302's Location."""

    attachmentId: str
    url: str
    expiresAt: int


class WarningView(TypedDict):
    code: str
    message: str


class TypingNotDeliveredView(TypedDict):
    caseId: str
    status: str  # not_delivered
    warning: WarningView


class AttachmentReferenceView(TypedDict):
    """An agent attachment in AgentMessage: casebridge's own id (GET /cases/{caseId}/attachments/{attachmentId}
    serves the file once copied), never 8x8's URL, which expires."""

    attachmentId: str
    fileName: str
    type: NotRequired[str]  # 8x8's kind: image, video, audio, file
    status: str  # pending when the event is published: the copy runs after it


class CaseEventView(TypedDict):
    """One event on the bus (the EventBridge detail) and on the case timeline."""

    eventId: str
    type: str
    caseId: str | None
    conversationId: str
    occurredAt: int
    receivedAt: int
    queueId: NotRequired[str]
    queueName: NotRequired[str]
    agentId: NotRequired[str]
    agentName: NotRequired[str]
    text: NotRequired[str]
    attachments: NotRequired[list[AttachmentReferenceView]]
    cards: NotRequired[list[dict[str, Any]]]
    typing: NotRequired[bool]
    channelId: NotRequired[str]
    messageId: NotRequired[str]
    attempts: NotRequired[int]
    reason: NotRequired[str]
    ambiguousAttempts: NotRequired[int]
    senderType: NotRequired[str]
    senderId: NotRequired[str]
    omitted: NotRequired[list[str]]
    bodyConflict: NotRequired[bool]
    wrapUpCode: NotRequired[str]
    clientMessageId: NotRequired[str]
    authorType: NotRequired[str]
    waiting: NotRequired[int | None]
    estimatedWaitSeconds: NotRequired[int | None]
    queuedSeconds: NotRequired[int]
    idleSeconds: NotRequired[int]
    source: NotRequired[str]
    readAt: NotRequired[int]
    transcriptId: NotRequired[str]
    messages: NotRequired[int]
    sequence: NotRequired[int]  # its place on the case's timeline (commit order); absent on bus-only events
    cursor: NotRequired[str]  # GET /cases/{caseId}/events?after=<cursor> resumes right after this event


class TimelineView(TypedDict):
    caseId: str
    events: list[CaseEventView]
    next: str | None


class LiveView(TypedDict):
    state: str
    agent: AgentView | None
    queue: QueueView | None
    transferPending: bool


def live_view(live: LiveState) -> LiveView:
    return {
        "state": live.state.value,
        "agent": {"id": live.agent_id, "name": live.agent_name} if live.agent_id else None,
        "queue": {"id": live.queue_id, "name": live.queue_name} if live.queue_id else None,
        "transferPending": live.transfer_pending,
    }


def case_view(case: CaseRecord) -> CaseView:
    live = case.live
    return {
        "caseId": case.case_id,
        "conversationId": case.conversation_id,
        "channelId": case.channel_id,
        **live_view(live),
        "createdAt": case.created_at,
        "updatedAt": case.updated_at,
        "stateChangedAt": live.changed_at or None,
    }


def event_view(entry: TimelineEntry, case_id: str | None) -> CaseEventView:
    view: dict[str, Any] = {
        "eventId": entry.event_id,
        "type": entry.type,
        "caseId": case_id,
        "conversationId": entry.conversation_id,
        "occurredAt": entry.occurred_at,
        "receivedAt": entry.received_at,
        **entry.detail,
    }
    if entry.sequence:
        view["sequence"] = entry.sequence
        view["cursor"] = entry.cursor
    return view  # type: ignore[return-value]  # detail holds the per-type fields listed in EVENT_FIELDS


def timeline_view(case_id: str, entries: list[TimelineEntry], cursor: str | None) -> TimelineView:
    return {"caseId": case_id, "events": [event_view(e, case_id) for e in entries], "next": cursor}


# ---- the event schema, documented once ---------------------------------------------------------------------
_STRING = {"type": "string"}
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "queueId": _STRING,
    "queueName": _STRING,
    "agentId": _STRING,
    "agentName": {"type": "string", "description": "Chat API v2 only: the Chat Gateway has no agent names"},
    "text": _STRING,
    "attachments": {
        "type": "array",
        "description": "casebridge's references: GET /cases/{caseId}/attachments/{attachmentId} serves each file",
        "items": {
            "type": "object",
            "required": ["attachmentId", "fileName", "status"],
            "properties": {
                "attachmentId": _STRING,
                "fileName": _STRING,
                "type": {"type": "string", "description": "8x8's kind: image, video, audio, file"},
                "status": {
                    "enum": ["pending", "sent"],
                    "description": "pending: an agent's file, copied from 8x8 after the event; sent: the customer's or "
                    "bot's file, in the bucket and sent to 8x8",
                },
            },
            "additionalProperties": False,
        },
    },
    "cards": {"type": "array", "items": {"type": "object"}},
    # An 8x8 message too large for its timeline item (DynamoDB's 400 KB): recorded cut, and said so. A WebSocket
    # frame (API Gateway's 128 KB) cuts the same way, with the same marks; the timeline keeps what it recorded.
    "textTruncated": {
        "const": True,
        "description": "8x8's text did not fit the timeline entry, or the WebSocket frame: `text` is its start, cut at "
        "a whole character (a frame's cut: GET /cases/{caseId}/events has the text as recorded)",
    },
    "textLength": {
        "type": "integer",
        "minimum": 0,
        "description": "with textTruncated: 8x8's text's length in characters",
    },
    "cardsDropped": {
        "type": "integer",
        "minimum": 1,
        "description": "8x8's cards did not fit the timeline entry, or the WebSocket frame, beside the text: how many "
        "there were; none are in it (a frame's: GET /cases/{caseId}/events has them)",
    },
    "typing": {"type": "boolean"},
    "channelId": _STRING,
    "messageId": _STRING,
    "attempts": {"type": "integer", "minimum": 1},
    "reason": _STRING,
    "ambiguousAttempts": {"type": "integer", "minimum": 0},
    "senderType": {"type": "string", "description": "8x8's sender.type, lower-cased: system, user, bot, …"},
    "senderId": _STRING,
    # The escalation (casebridge.escalation; docs/escalation.md).
    "wrapUpCode": {"type": "string", "description": "where 8x8 gave one (no documented 8x8 webhook carries it)"},
    "clientMessageId": _STRING,
    "authorType": {"enum": ["user", "bot"]},
    "waiting": {"type": ["integer", "null"], "minimum": 0},
    "estimatedWaitSeconds": {"type": ["integer", "null"], "minimum": 0},
    "queuedSeconds": {"type": "integer", "minimum": 0},
    "idleSeconds": {"type": "integer", "minimum": 0},
    "source": {"enum": ["casebridge", "8x8"], "description": "who noticed: casebridge's timer or 8x8's idle"},
    "readAt": {"type": "integer", "description": "everything up to this time (epoch ms) was read"},
    "transcriptId": {"type": "string", "description": "GET /cases/{caseId}/transcript serves the case's transcript"},
    "messages": {"type": "integer", "minimum": 0},
    "history": {"const": True, "description": "sent with the open's history, before the escalation"},
}
# A message from 8x8: its content, and the marks of what its timeline entry could not hold.
_CONTACT_CENTER_CONTENT = ("text", "attachments", "cards", "textTruncated", "textLength", "cardsDropped")
# type → (required extra fields, optional extra fields, description)
EVENT_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "ConversationOpened": (("channelId",), (), "casebridge opened the case's 8x8 conversation"),
    "Queued": ((), ("queueId", "queueName"), "the interaction waits in an 8x8 queue"),
    "AgentJoined": (("agentId",), ("agentName",), "an agent accepted"),
    "AgentMessage": (("agentId",), ("agentName", *_CONTACT_CENTER_CONTENT), "an agent wrote"),
    "SystemMessage": (
        ("senderType",),
        ("senderId", *_CONTACT_CENTER_CONTENT),
        "Chat Gateway: a message in the conversation that no agent wrote and casebridge did not post "
        "(8x8's system lines, or a user/bot post from elsewhere)",
    ),
    "Transferred": ((), (), "the agent moved the case to another queue; AgentLeft, Queued, AgentJoined follow"),
    "AgentLeft": (("agentId",), ("agentName", "wrapUpCode"), "the agent left or ended the interaction"),
    "ConversationIdle": ((), (), "Chat Gateway: 8x8 reports no live interaction any more"),
    "CustomerLeft": ((), (), "the customer left (through casebridge, or on the 8x8 side)"),
    "AgentTyping": (("typing",), ("agentId",), "Chat Gateway: the agent started or stopped typing (bus only)"),
    "MessageFailed": (
        ("messageId", "attempts", "reason", "ambiguousAttempts"),
        (),
        "a customer or bot message could not be delivered and went to the dead-letter queue",
    ),
    "CustomerMessage": (
        ("messageId", "authorType"),
        ("clientMessageId", "text", "attachments", "cards", "history"),
        "the customer's or bot's message, as 8x8 took it (so every reader renders the whole conversation)",
    ),
    "MessageDelivered": (("messageId",), ("clientMessageId",), "8x8 took the customer's or bot's message"),
    "MessageRead": (("readAt",), ("agentId",), "Chat Gateway: 8x8 reports the agent side read up to readAt"),
    "WaitUpdate": (
        ("queueId", "waiting", "estimatedWaitSeconds"),
        (),
        "while queued: the queue's figures changed (at most once a minute; null when 8x8 gave none)",
    ),
    "QueueTimeout": (("queuedSeconds",), ("queueId",), "queued longer than MaxQueuedMinutes"),
    "CustomerIdle": (
        ("source",),
        ("idleSeconds",),
        "the customer is silent while with an agent (casebridge's timer, or 8x8's idle); the end follows",
    ),
    "HandedBack": (
        ("reason",),
        ("wrapUpCode",),
        "the case returns to the bot: reason agent-ended (the agent ended it), idle (8x8 reported the "
        "conversation idle and no agent left) or queue-timeout",
    ),
    "TranscriptReady": (("transcriptId", "messages"), (), "the case closed and its transcript was written"),
}


def event_json_schema() -> dict[str, Any]:
    common = {
        "eventId": _STRING,
        "caseId": _STRING,
        "conversationId": _STRING,
        "occurredAt": {"type": "integer", "description": "8x8's time (casebridge's for its own events), epoch ms"},
        "receivedAt": {"type": "integer", "description": "when casebridge received or made it, epoch ms"},
        "omitted": {
            "type": "array",
            "items": {"enum": ["text", "cards", "attachments"]},
            "description": "the event was over EventBridge's 256 KB (or a WebSocket frame's 128 KB even with its text "
            "cut and cards dropped): these fields are on the timeline only (GET /cases/{caseId}/events, same eventId)",
        },
        "bodyConflict": {
            "const": True,
            "description": "another body came earlier under the same 8x8 event id (8x8 signs only a CRC32 of the "
            "body): one of the two is forged; eventId is 8x8's id with this body's hash, and an operator decides",
        },
        "sequence": {
            "type": "integer",
            "minimum": 1,
            "description": "its place on the case's timeline: assigned at commit, strictly increasing per case "
            "(absent on bus-only events)",
        },
        "cursor": {
            "type": "string",
            "description": "opaque: GET /cases/{caseId}/events?after=<cursor> resumes right after this event",
        },
    }
    variants = []
    for event_type, (required, optional, description) in EVENT_FIELDS.items():
        variants.append(
            {
                "title": event_type,
                "description": description,
                "type": "object",
                "required": ["eventId", "type", "caseId", "conversationId", "occurredAt", "receivedAt", *required],
                "properties": {
                    **common,
                    "type": {"const": event_type},
                    **{name: _FIELD_SCHEMAS[name] for name in (*required, *optional)},
                },
                "additionalProperties": False,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://casebridge.dev/schemas/case-event.json",
        "title": "casebridge case event (EventBridge detail and timeline item)",
        "description": "EventBridge: source 'casebridge', detail-type = type. At least once: drop repeats by eventId.",
        "oneOf": variants,
    }
