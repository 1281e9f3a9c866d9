"""Chat Gateway v1's webhook dialect ("Chat Gateway v1.0") → ContactCenterEvent. GATEWAY.md §3.3.

Envelope `{eventType, conversationId, timestamp, data}`. Differences from v2 that matter here:
- MESSAGE fires for every participant, so the connector's own user/bot posts come back. A user/bot message is
  an echo only when casebridge posted it (its fingerprint is on the case); `isEcho` is a hint whose rule for user
  posts is undocumented (trap T4) and is not used. Sender types compare case-insensitively.
- Agents join and leave as MEMBERS_CHANGED, with an id and never a name.
- CONVERSATION_UPDATE states compare case-insensitively (trap T17); only `idle` says something new.
- Unknown event types and ACTIVITY names must be answered 2xx (the lists are extensible).
"""

from __future__ import annotations

from typing import Any

from casebridge.events import (
    ContactCenterEvent,
    EventKind,
    MalformedEvent,
    compact,
    conversation_id_field,
    event_type_field,
    text_field,
    timestamp_field,
    unknown_event,
)

NOTIFICATION_VERSION = "Chat Gateway v1.0"
KNOWN_EVENT_TYPES = frozenset({"QUEUED", "TRANSFER", "MEMBERS_CHANGED", "MESSAGE", "CONVERSATION_UPDATE", "ACTIVITY"})
MAX_ATTACHMENTS = 50
MAX_CARDS = 20


def _data(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MalformedEvent("data must be an object", "data")
    return data


def _attachments(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ATTACHMENTS:
        raise MalformedEvent(f"data.attachments must be a list of at most {MAX_ATTACHMENTS}", "data.attachments")
    attachments = []
    for item in value:
        if not isinstance(item, dict):
            raise MalformedEvent("data.attachments items must be objects", "data.attachments")
        attachments.append(
            compact(
                {
                    "id": text_field(item.get("id"), "data.attachments.id", required=True, max_length=512),
                    "type": text_field(item.get("type"), "data.attachments.type", max_length=64),
                    "fileName": text_field(item.get("fileName"), "data.attachments.fileName", max_length=1024),
                    "url": text_field(item.get("preSignedUrl"), "data.attachments.preSignedUrl", max_length=4096),
                }
            )
        )
    return attachments or None


def _cards(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_CARDS or not all(isinstance(c, dict) for c in value):
        raise MalformedEvent(f"data.cards must be a list of at most {MAX_CARDS} objects", "data.cards")
    return value or None


def _unhandled(source: str, conversation_id: str, timestamp: int, note: str) -> ContactCenterEvent:
    return ContactCenterEvent(EventKind.UNHANDLED, source, conversation_id, timestamp, note=note)


def parse_webhook_event(payload: Any) -> ContactCenterEvent:
    """Raises MalformedEvent for a known event type in the wrong shape; unknown types are UNHANDLED."""
    source = event_type = event_type_field(payload)
    if event_type == "WEB_HOOK_VERIFY":
        return ContactCenterEvent(EventKind.VERIFY, source)
    if event_type not in KNOWN_EVENT_TYPES:
        # Checked before the envelope: an unknown type is answered 2xx and kept whatever its shape.
        return unknown_event(source, payload.get("conversationId"))
    conversation_id = conversation_id_field(payload.get("conversationId"))
    timestamp = timestamp_field(payload.get("timestamp"))
    data = _data(payload)

    def event(kind: EventKind, **detail: Any) -> ContactCenterEvent:
        return ContactCenterEvent(kind, source, conversation_id, timestamp, compact(detail))

    if event_type == "QUEUED":
        return event(
            EventKind.QUEUED,
            queueId=text_field(data.get("queueId"), "data.queueId", max_length=256),
            queueName=text_field(data.get("queueName"), "data.queueName", max_length=1024),
        )
    if event_type == "TRANSFER":
        return event(EventKind.TRANSFERRED)
    if event_type == "MEMBERS_CHANGED":
        member = text_field(data.get("memberType"), "data.memberType", required=True, max_length=64)
        change = text_field(data.get("change"), "data.change", required=True, max_length=64)
        member_id = text_field(data.get("id"), "data.id", max_length=256)
        if member == "agent" and change in ("joined", "left"):
            if not member_id:
                raise MalformedEvent("data.id (the agent id) is required", "data.id")
            if change == "joined":
                return event(EventKind.AGENT_JOINED, agentId=member_id)
            # No wrap-up code is documented on any Gateway event (ESCALATION.md §6): read if 8x8 ever sends one.
            wrap_up = text_field(data.get("wrapUpCode"), "data.wrapUpCode", max_length=256)
            return event(EventKind.AGENT_LEFT, agentId=member_id, wrapUpCode=wrap_up)
        if member == "user" and change == "left":
            return event(EventKind.CUSTOMER_LEFT)
        return _unhandled(f"{source}/{member}/{change}", conversation_id, timestamp, "membership change not acted on")
    if event_type == "MESSAGE":
        sender = data.get("sender")
        if not isinstance(sender, dict):
            raise MalformedEvent("data.sender is required", "data.sender")
        # 8x8 spells types as it likes (`Agent`, `AGENT`, and `""` in its own example of an agent message).
        sender_type = (text_field(sender.get("type"), "data.sender.type", max_length=64) or "").strip().lower()
        sender_id = text_field(sender.get("id"), "data.sender.id", max_length=256)
        text = text_field(data.get("text"), "data.text")
        attachments = _attachments(data.get("attachments"))
        cards = _cards(data.get("cards"))
        if sender_type in ("agent", "") and sender_id:
            return event(EventKind.AGENT_MESSAGE, agentId=sender_id, text=text, attachments=attachments, cards=cards)
        # A user/bot message may be the echo of casebridge's own post: decided against what casebridge posted,
        # not by `isEcho`. A system line, or a sender casebridge does not know, is published.
        kind = EventKind.PARTICIPANT_MESSAGE if sender_type in ("user", "bot") else EventKind.SYSTEM_MESSAGE
        return event(
            kind,
            senderType=sender_type or "unknown",
            senderId=sender_id,
            text=text,
            attachments=attachments,
            cards=cards,
        )
    if event_type == "CONVERSATION_UPDATE":
        state = (text_field(data.get("state"), "data.state", max_length=64) or "").lower()
        if state == "idle":
            return event(EventKind.CONVERSATION_IDLE)
        return _unhandled(f"{source}/{state or 'none'}", conversation_id, timestamp, "state says nothing new")
    if event_type == "ACTIVITY":
        name = text_field(data.get("name"), "data.name", max_length=128) or ""
        if name == "typing":
            value = data.get("value")
            users = value.get("users") if isinstance(value, dict) else None
            if not isinstance(users, list):
                raise MalformedEvent("data.value.users must be a list", "data.value.users")
            agents = [u for u in users if isinstance(u, dict) and u.get("type") == "agent"]
            if users and not agents:
                return _unhandled(f"{source}/typing", conversation_id, timestamp, "typing by a non-agent")
            agent_id = text_field(agents[0].get("id"), "data.value.users.id", max_length=256) if agents else None
            return event(EventKind.AGENT_TYPING, agentId=agent_id, typing=bool(agents))
        if name == "read-receipts":  # "not yet supported" by any channel (T19): taken when it comes
            return event(EventKind.MESSAGE_READ, **_read_receipt(data.get("value"), timestamp))
        return _unhandled(f"{source}/{name or 'unnamed'}", conversation_id, timestamp, "activity not acted on")
    raise AssertionError(f"{event_type} is in KNOWN_EVENT_TYPES without a branch")  # pragma: no cover


def _read_receipt(value: Any, timestamp: int) -> dict[str, Any]:
    """GATEWAY.md's shape: value = [{timestamp, users: [{id, type}]}]: read up to the latest timestamp, by the agent
    named. A `{readAt}` object is taken too; anything else reads as "up to the event's time" (never refused)."""
    if isinstance(value, dict):
        read_at = value.get("readAt")
        return {"readAt": timestamp_field(read_at) if read_at is not None else timestamp}
    receipts = [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []
    times = [r["timestamp"] for r in receipts if isinstance(r.get("timestamp"), int) and r["timestamp"] >= 0]
    users = [u for r in receipts if isinstance(r.get("users"), list) for u in r["users"]]
    agents = [
        u["id"]
        for u in users
        if isinstance(u, dict) and str(u.get("type", "")).lower() == "agent" and isinstance(u.get("id"), str)
    ]
    read: dict[str, Any] = {"readAt": max(times) if times else timestamp}
    if agents:
        read["agentId"] = text_field(agents[0], "data.value.users.id", max_length=256)
    return read
