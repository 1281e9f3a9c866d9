"""The case's transcript, built from casebridge's own timeline (so it is complete on both 8x8 APIs: v2 has no
message history to fetch, and the Gateway's may age out, ESCALATION.md §10.9).

Interactions: one from each queuing to its end (the agent ended it, the customer left, a hand-back, 8x8's idle);
a transfer stays inside its interaction as a queue hop. Messages both ways with author, time, attachments and
cards; the agents who joined; wrap-up codes where 8x8 gave one. Written on close to the attachments bucket
(`transcripts/<caseId>/<closedAt>.json`, the bucket's encryption, kept TranscriptRetentionDays).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from casebridge.clock import now_ms
from casebridge.services import Services
from casebridge.store.records import TimelineEntry

PREFIX = "transcripts/"
PAGE = 100
MAX_ENTRIES = 5000  # a bound on one build: a case longer than this is cut, and says so
_ENDS = {"AgentLeft", "CustomerLeft", "HandedBack", "ConversationIdle", "QueueTimeout"}


def transcript_key(case_id: str, closed_at: int) -> str:
    return f"{PREFIX}{case_id}/{closed_at:013d}.json"


def timeline(services: Services, case_id: str) -> tuple[list[TimelineEntry], bool]:
    entries: list[TimelineEntry] = []
    after: str | None = None
    while len(entries) < MAX_ENTRIES:
        page, cursor = services.store.list_timeline(case_id, after, PAGE)
        entries.extend(page)
        if len(page) < PAGE or cursor == after:
            return entries, False
        after = cursor
    return entries[:MAX_ENTRIES], True


def build(case_id: str, conversation_id: str | None, entries: list[TimelineEntry], cut: bool = False) -> dict[str, Any]:
    interactions: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None

    def start(at: int) -> dict[str, Any]:
        nonlocal current
        current = {"startedAt": at, "endedAt": None, "endReason": None, "queues": [], "agents": [], "wrapUpCode": None}
        interactions.append(current)
        return current

    for entry in entries:
        kind, detail, at = entry.type, entry.detail, entry.occurred_at
        if kind == "Queued":
            interaction = current if current is not None and current["endedAt"] is None else start(at)
            hop = {"at": at, "queueId": detail.get("queueId"), "queueName": detail.get("queueName")}
            interaction["queues"].append(hop)
        elif kind == "AgentJoined":
            interaction = current if current is not None and current["endedAt"] is None else start(at)
            interaction["agents"].append(
                {"id": detail.get("agentId"), "name": detail.get("agentName"), "joinedAt": at, "leftAt": None}
            )
        elif kind in _ENDS and current is not None:
            if kind == "AgentLeft":
                for agent in current["agents"]:
                    if agent["id"] == detail.get("agentId") and agent["leftAt"] is None:
                        agent["leftAt"] = at
            if detail.get("wrapUpCode"):
                current["wrapUpCode"] = detail["wrapUpCode"]
            transferring = kind == "AgentLeft" and bool(current["queues"]) and _transfer_pending(entries, entry)
            if current["endedAt"] is None and not transferring:
                current["endedAt"], current["endReason"] = at, _reason(kind, detail)
        elif kind == "AgentMessage":
            messages.append(
                {
                    "at": at,
                    "author": {"type": "agent", "id": detail.get("agentId"), "name": detail.get("agentName")},
                    "text": detail.get("text"),
                    "attachments": detail.get("attachments") or [],
                    "cards": detail.get("cards") or [],
                }
            )
        elif kind == "CustomerMessage":
            messages.append(
                {
                    "at": at,
                    "author": {"type": "customer" if detail.get("authorType") == "user" else "bot"},
                    "text": detail.get("text"),
                    "attachments": detail.get("attachments") or [],
                    "cards": detail.get("cards") or [],
                    "messageId": detail.get("messageId"),
                }
            )
    return {
        "caseId": case_id,
        "conversationId": conversation_id,
        "generatedAt": now_ms(),
        "complete": not cut,
        "interactions": interactions,
        "messages": messages,
    }


def _transfer_pending(entries: list[TimelineEntry], left: TimelineEntry) -> bool:
    """A transfer (Transferred) since the last agent joined: this agent leaving is a hop, not the end."""
    for entry in reversed(entries[: entries.index(left)]):
        if entry.type == "Transferred":
            return True
        if entry.type == "AgentJoined":
            return False
    return False


def _reason(kind: str, detail: dict[str, Any]) -> str:
    if kind == "HandedBack":
        return str(detail.get("reason") or "handed-back")
    return {"AgentLeft": "agent-ended", "CustomerLeft": "customer-left", "QueueTimeout": "queue-timeout"}.get(
        kind, "idle"
    )


def _clock(at: int) -> str:
    return datetime.fromtimestamp(at / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def as_text(transcript: dict[str, Any]) -> str:
    lines = [f"Case {transcript['caseId']} (8x8 conversation {transcript['conversationId']})"]
    for number, interaction in enumerate(transcript["interactions"], 1):
        queues = ", ".join(q["queueName"] or q["queueId"] or "?" for q in interaction["queues"]) or "-"
        agents = ", ".join(a["name"] or a["id"] or "?" for a in interaction["agents"]) or "-"
        ended = _clock(interaction["endedAt"]) if interaction["endedAt"] else "ongoing"
        lines.append(
            f"Interaction {number}: {_clock(interaction['startedAt'])} - {ended}; queues: {queues}; agents: {agents}"
            + (f"; ended: {interaction['endReason']}" if interaction["endReason"] else "")
            + (f"; wrap-up: {interaction['wrapUpCode']}" if interaction["wrapUpCode"] else "")
        )
    lines.append("")
    for message in transcript["messages"]:
        author = message["author"]
        agent = f"Agent {author.get('name') or author.get('id')}"
        who = {"customer": "Customer", "bot": "Bot"}.get(author["type"]) or agent
        files = "".join(f" [file: {a.get('fileName')}]" for a in message["attachments"])
        cards = " [card]" * len(message["cards"])
        lines.append(f"[{_clock(message['at'])}] {who}: {message['text'] or ''}{files}{cards}".rstrip())
    if not transcript["complete"]:
        lines.append("(cut: the case is longer than one transcript holds)")
    return "\n".join(lines) + "\n"


def case_transcript(services: Services, case_id: str, conversation_id: str | None) -> dict[str, Any]:
    entries, cut = timeline(services, case_id)
    return build(case_id, conversation_id, entries, cut)


def write(services: Services, case_id: str, conversation_id: str | None, closed_at: int) -> tuple[str, dict[str, Any]]:
    """The transcript into the attachments bucket; returns its key and content."""
    from casebridge.attachments.storage import bucket  # noqa: PLC0415 - S3 only where transcripts are written

    transcript = case_transcript(services, case_id, conversation_id)
    key = transcript_key(case_id, closed_at)
    storage = bucket(services)
    storage.client.put_object(
        Bucket=storage.name,
        Key=key,
        Body=json.dumps(transcript, separators=(",", ":"), ensure_ascii=False).encode(),
        ContentType="application/json",
    )
    return key, transcript
