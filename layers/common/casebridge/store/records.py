"""What the table stores, as typed records: a case, a timeline entry, an outbound message's delivery record,
and a webhook receipt. Conversions to and from DynamoDB items live beside each record."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from casebridge.events import EventKind
from casebridge.state import CaseState, LiveState, StateEvent
from casebridge.store.codec import EVENT_PREFIX, encode_cursor, from_item, sequence_sort_key


class MessageStatus(StrEnum):
    SENDING = "sending"  # an attempt is in flight (a crash leaves this: the next attempt counts as ambiguous)
    PENDING = "pending"  # an attempt failed; the retry is deferred on the queue
    SENT = "sent"
    FAILED = "failed"  # dead-lettered, MessageFailed recorded; sent again only after an operator's redrive


@dataclass(frozen=True)
class OpeningAttempt:
    """What a create was asked with: the claim records it, and it stays on the case while the create's outcome is
    unknown (ambiguous answer, or its opener died), so the next opener looks on that channel and knows which
    request made the conversation it finds."""

    channel_id: str
    request_hash: str
    customer_hash: str | None = None
    routing: tuple[str, str] | None = None  # (type, id)

    def encode(self) -> str:
        data: dict[str, Any] = {"channelId": self.channel_id, "requestHash": self.request_hash}
        if self.customer_hash is not None:
            data["customerHash"] = self.customer_hash
        if self.routing is not None:
            data["routing"] = list(self.routing)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> OpeningAttempt | None:
        try:
            data = json.loads(text)
            routing = data.get("routing")
            return cls(
                str(data["channelId"]),
                str(data["requestHash"]),
                data.get("customerHash"),
                (str(routing[0]), str(routing[1])) if isinstance(routing, list) and len(routing) == 2 else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    conversation_id: str | None = None
    channel_id: str | None = None
    live: LiveState = field(default_factory=LiveState)
    version: int = 0
    created_at: int = 0
    updated_at: int = 0
    opening_until: int = 0
    opening_ambiguous: bool = False  # a create's outcome is unknown: look the conversation up before creating
    opening_settles_at: int = 0  # until then 8x8 may still be making an ambiguous create's conversation
    # The open requests the conversation was made from (a retry of one is the same request: answered 200).
    open_request_hashes: frozenset[str] = frozenset()
    customer_hash: str | None = None  # the customer data 8x8 has for the conversation, as far as casebridge knows
    opening_attempts: frozenset[OpeningAttempt] = frozenset()  # creates whose outcome is unknown
    routing: dict[str, str] | None = None  # the routing asked for at open (Gateway reopen re-routes to it)
    pending_publish: frozenset[str] = frozenset()  # timeline sort keys recorded but not yet on the bus
    reopen_by: str | None = None  # the message that asked 8x8 to reopen the case (its retries ask again)
    timeline_seq: int = 0  # the sequence of the case's last timeline entry (each entry's write raises it by one)
    # The conversation is recorded and the events 8x8 sent before it may not be taken in yet: the outbox sweeper
    # takes them in if the request that recorded it could not (the case stays on its index meanwhile).
    early_events_untaken: bool = False
    conversation_opened_at: int = 0  # when the conversation was recorded (its ConversationOpened's time)
    take_in_held_until: int = 0  # the opener's turn to take in what follows its conversation (then anyone's)

    def take_in_due(self, now: int) -> bool:
        """What follows its recorded conversation is not taken in, and the opener's turn is over (or given up)."""
        return self.early_events_untaken and self.take_in_held_until <= now

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CaseRecord:
        p = from_item(item)
        live = live_from_fields(p)
        events = tuple(
            StateEvent(
                EventKind(e["k"]), int(e["t"]), str(e["id"]), {str(k): str(v) for k, v in (e.get("d") or {}).items()}
            )
            for e in p.get("stateEvents") or ()
        )
        if events:
            live = replace(live, events=events, base=live_from_fields(dict(p.get("stateBase") or {})))
        routing = p.get("routing")
        return cls(
            case_id=p["caseId"],
            conversation_id=p.get("conversationId"),
            channel_id=p.get("channelId"),
            live=live,
            version=int(p.get("version", 0)),
            created_at=int(p.get("createdAt", 0)),
            updated_at=int(p.get("updatedAt", 0)),
            opening_until=int(p.get("openingUntil", 0)),
            opening_ambiguous=bool(p.get("openingAmbiguous", False)),
            opening_settles_at=int(p.get("openingSettlesAt", 0)),
            open_request_hashes=frozenset(p.get("openRequestHashes") or ())
            | ({p["openRequestHash"]} if p.get("openRequestHash") else set()),
            customer_hash=p.get("customerHash"),
            opening_attempts=frozenset(
                a for a in map(OpeningAttempt.decode, p.get("openingAttempts") or ()) if a is not None
            ),
            routing={str(k): str(v) for k, v in routing.items()} if isinstance(routing, dict) else None,
            pending_publish=frozenset(p.get("pendingPublish") or ()),
            reopen_by=p.get("reopenBy"),
            timeline_seq=int(p.get("timelineSeq", 0)),
            early_events_untaken=bool(p.get("earlyEventsUntaken", False)),
            conversation_opened_at=int(p.get("conversationOpenedAt", 0)),
            take_in_held_until=int(p.get("takeInHeldUntil", 0)),
        )


def live_from_fields(p: dict[str, Any]) -> LiveState:
    return LiveState(
        state=CaseState(p.get("state", CaseState.OPEN.value)),
        state_at=int(p.get("stateAt", 0)),
        changed_at=int(p.get("changedAt", p.get("stateAt", 0))),
        queue_id=p.get("queueId"),
        queue_name=p.get("queueName"),
        agent_id=p.get("agentId"),
        agent_name=p.get("agentName"),
        transfer_pending=bool(p.get("transferPending", False)),
        reopen_requested=bool(p.get("reopenRequested", False)),
    )


def live_fields(live: LiveState) -> dict[str, Any]:
    """The derived state as stored (the case item's own attributes, and the kept base's map)."""
    fields = {
        "state": live.state.value,
        "stateAt": live.state_at,
        "changedAt": live.changed_at,
        "transferPending": live.transfer_pending,
        "reopenRequested": live.reopen_requested,
        "queueId": live.queue_id,
        "queueName": live.queue_name,
        "agentId": live.agent_id,
        "agentName": live.agent_name,
    }
    return {k: v for k, v in fields.items() if v is not None}


def state_events_item(live: LiveState) -> list[dict[str, Any]]:
    return [{"k": e.kind.value, "t": e.at, "id": e.event_id, "d": dict(e.detail) or None} for e in live.events]


@dataclass(frozen=True)
class TimelineEntry:
    """One normalised event on a case's timeline (also the body of the published event)."""

    event_id: str
    type: str
    conversation_id: str
    occurred_at: int
    received_at: int
    detail: dict[str, Any] = field(default_factory=dict)
    source_event_type: str | None = None  # 8x8's eventType, kept so early events can be replayed
    # Its place on the case's timeline, assigned when the entry is committed (0: not on a case's timeline yet,
    # an early event under its conversation, or an entry written before timelines had sequences).
    sequence: int = 0

    @property
    def sort_key(self) -> str:
        if self.sequence:
            return sequence_sort_key(self.sequence)
        return f"{EVENT_PREFIX}{self.received_at:013d}#{self.event_id}"

    @property
    def cursor(self) -> str:
        """The opaque cursor that pages past this entry (`GET /cases/{id}/events?after=`)."""
        return encode_cursor(self.sort_key)

    def attributes(self, ttl: int) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "type": self.type,
            "conversationId": self.conversation_id,
            "occurredAt": self.occurred_at,
            "receivedAt": self.received_at,
            "detail": self.detail or None,
            "sourceEventType": self.source_event_type,
            "sequence": self.sequence or None,
            "expiresAt": ttl,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TimelineEntry:
        return cls.from_plain(from_item(item))

    @classmethod
    def from_plain(cls, p: dict[str, Any]) -> TimelineEntry:
        return cls(
            event_id=p["eventId"],
            type=p["type"],
            conversation_id=p["conversationId"],
            occurred_at=int(p["occurredAt"]),
            received_at=int(p["receivedAt"]),
            detail=dict(p.get("detail") or {}),
            source_event_type=p.get("sourceEventType"),
            sequence=int(p.get("sequence") or 0),
        )


@dataclass(frozen=True)
class MessageRecord:
    message_id: str
    status: MessageStatus
    attempts: int = 0
    ambiguous_attempts: int = 0
    redrive: int = 0  # the operator redrive this record belongs to (0: the first delivery)
    # The SQS message the attempt came from: a dead-lettered message arriving as another SQS message was moved
    # back from the dead-letter queue (by any tool), not redelivered. "" on records written before it was kept.
    queue_message_id: str = ""
    # A failed record's MessageFailed that could not join the case's timeline yet (the case kept changing): the
    # queue's redelivery records it through the case's outbox.
    parked_event: TimelineEntry | None = None

    @classmethod
    def from_item(cls, message_id: str, item: dict[str, Any]) -> MessageRecord:
        p = from_item(item)
        parked = p.get("parkedEvent")
        return cls(
            message_id,
            MessageStatus(p["status"]),
            int(p.get("attempts", 0)),
            int(p.get("ambiguousAttempts", 0)),
            int(p.get("redrive", 0)),
            str(p.get("queueMessageId") or ""),
            parked_event=TimelineEntry.from_plain(parked) if isinstance(parked, dict) else None,
        )


@dataclass(frozen=True)
class WebhookReceipt:
    """A verified webhook delivery's event id, with a hash of its body: a later delivery of the same id with
    another body is a replay with a forged body (8x8's signature covers only a CRC32 of the body)."""

    tenant_id: str
    event_id: str
    body_sha256: str
    event_type: str = ""
    conversation_id: str | None = None
    outcome: str = "accepted"  # accepted | verify | unhandled | malformed
    kept_body: str | None = None  # unhandled and malformed events keep their body, redacted, for operators (TTL)
    # Another body came first under this event id: this receipt is keyed by its own hash, flagged for an operator.
    body_conflict: bool = False
