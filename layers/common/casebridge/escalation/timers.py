"""The escalation's timers: one scheduled sweep (EventBridge, every minute) over the table's sparse index
`ActiveCasesIndex` (cases carry `sweepShard` while queued, with an agent, agent_left or closed and not yet
swept clean; casebridge/store/table.py sets it with the state). Never a sleeping Lambda: a case waits in the
table, and each sweep decides what is due from its times.

Per case, what is due:
- queued: `QueueTimeout {queueId, queuedSeconds}` once per queued period longer than MaxQueuedMinutes, and when
  the open asked for it (`onQueueTimeout: "handback"`) the conversation ends (8x8 "customer leaves") and
  `HandedBack {reason: "queue-timeout"}` follows; otherwise `WaitUpdate {queueId, waiting,
  estimatedWaitSeconds}` when the queue's figures changed, at most once a minute (one metrics read per queue
  serves all its cases, through the shared figures cache).
- with an agent: `CustomerIdle {idleSeconds}` once the customer (their last delivered message, or the agent's
  joining) is silent CustomerIdleMinutes; still silent CustomerIdleGraceMinutes later, the conversation ends
  (CustomerLeft, as if the customer left).
- agent_left: `HandedBack {reason: "agent-ended"}` if the intake's was lost, or `{reason: "idle"}` when 8x8's
  idle alone ended the interaction (no agent-left; a minute after it); then the transcript.
- closed: the transcript (`TranscriptReady`), then the case leaves the index.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from casebridge import cases
from casebridge.clock import now_ms
from casebridge.errors import CasebridgeError
from casebridge.escalation import transcript
from casebridge.escalation.availability import Figures, estimate_wait_seconds
from casebridge.escalation.marks import Marks, leave_sweep, raise_mark, set_marks
from casebridge.escalation.signals import hand_back, record_own_event
from casebridge.escalation.wiring import parts
from casebridge.observability import logger
from casebridge.services import Services
from casebridge.state import CaseState
from casebridge.store.codec import CASE_SK, case_pk, from_item, key
from casebridge.store.records import CaseRecord
from casebridge.store.table import SWEEP_SHARD

INDEX = "ActiveCasesIndex"
STOP_BEFORE_END_MS = 5_000
WAIT_UPDATE_EVERY_MS = 60_000
IDLE_END_SETTLES_MS = 60_000


@dataclass
class SweepReport:
    cases: int = 0
    events: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    metrics_reads: int = 0
    left: int = 0  # cases not reached before the invocation's end

    def count(self, event_type: str) -> None:
        self.events[event_type] = self.events.get(event_type, 0) + 1


def active_case_ids(services: Services) -> Iterator[str]:
    request: dict[str, Any] = {
        "TableName": services.store.table,
        "IndexName": INDEX,
        "KeyConditionExpression": "sweepShard = :shard",
        "ExpressionAttributeValues": {":shard": {"S": SWEEP_SHARD}},
    }
    while True:
        answer = services.store.client.query(**request)
        for item in answer.get("Items", []):
            pk = str(from_item(item)["pk"])
            if pk.startswith("CASE#"):
                yield pk.removeprefix("CASE#")
        if not answer.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def sweep(services: Services, now: int | None = None, remaining_ms: Callable[[], int] | None = None) -> SweepReport:
    """`remaining_ms`: the invocation's time left; the sweep stops 5 s before the end. The cases are taken in a
    random order, so a sweep cut short never leaves the same cases behind every minute."""
    report = SweepReport()
    figures: dict[str, Figures | None] = {}
    now = now_ms() if now is None else now
    case_ids = list(active_case_ids(services))
    random.shuffle(case_ids)
    for case_id in case_ids:
        if remaining_ms is not None and remaining_ms() < STOP_BEFORE_END_MS:
            report.left = len(case_ids) - report.cases
            logger.warning("sweep stopped for time; the next one goes on", extra={"left": report.left})
            break
        report.cases += 1
        try:
            found = services.store.client.get_item(
                TableName=services.store.table, Key=key(case_pk(case_id), CASE_SK), ConsistentRead=True
            ).get("Item")
            if not found:
                continue
            case = CaseRecord.from_item(found)  # one read: the case and the escalation's marks on it
            if case.conversation_id:
                _sweep_case(services, case, Marks.from_item(found), now, figures, report)
        except Exception:
            report.failures += 1
            logger.exception("sweep of a case failed; the next sweep tries again", extra={"caseId": case_id})
    report.metrics_reads = sum(1 for f in figures.values() if f is not None)
    logger.info("escalation sweep done", extra={"cases": report.cases, "events": report.events})
    return report


def _sweep_case(
    services: Services,
    case: CaseRecord,
    marks: Marks,
    now: int,
    figures: dict[str, Figures | None],
    report: SweepReport,
) -> None:
    settings = services.settings
    live = case.live
    assert case.conversation_id is not None
    if live.state is CaseState.QUEUED:
        queued_since = live.changed_at or live.state_at
        timed_out = now - queued_since >= settings.max_queued_minutes * 60_000
        if timed_out and (marks.queue_timeout_for or 0) < queued_since:
            record_own_event(
                services,
                case.case_id,
                case.conversation_id,
                "QueueTimeout",
                f"queue-timeout-{case.conversation_id}-{queued_since}",
                {"queueId": live.queue_id, "queuedSeconds": (now - queued_since) // 1000},
            )
            raise_mark(services.store, case.case_id, "queueTimeoutFor", queued_since)
            report.count("QueueTimeout")
        # Its own condition, not under the QueueTimeout's mark: a hand-back whose 8x8 "leave" failed is tried
        # again by the next sweep (leaving twice is harmless; HandedBack is once per occasion).
        if timed_out and marks.on_queue_timeout == "handback" and (marks.handed_back_for or 0) < queued_since:
            services.contact_center.customer_leaves(case.conversation_id)
            if hand_back(services, case, "queue-timeout", queued_since):
                report.count("HandedBack")
            return
        if timed_out and marks.on_queue_timeout == "handback":
            return
        _wait_update(services, case, marks, now, figures, report)
        return
    if live.state is CaseState.WITH_AGENT:
        last = max(marks.customer_active_at, live.changed_at)
        idle_ms = settings.customer_idle_minutes * 60_000
        if now - last >= idle_ms and (marks.idle_warned_for or 0) < last:
            record_own_event(
                services,
                case.case_id,
                case.conversation_id,
                "CustomerIdle",
                f"idle-{case.conversation_id}-{last}",
                {"idleSeconds": (now - last) // 1000, "source": "casebridge"},
            )
            set_marks(services.store, case.case_id, idleWarnedFor=last)
            report.count("CustomerIdle")
        elif marks.idle_warned_for == last and now - last >= idle_ms + settings.customer_idle_grace_minutes * 60_000:
            cases.customer_leaves(services, case.case_id)
            report.count("CustomerLeft")
        return
    if live.state is CaseState.AGENT_LEFT:
        if (marks.handed_back_for or 0) < live.state_at:
            reason, wrap_up = _how_it_ended(services, case.case_id)
            # An end by 8x8's idle alone waits a minute for an agent-left that may still come (it would be a
            # second occasion, so a second HandedBack).
            settled = reason == "agent-ended" or now - live.state_at >= IDLE_END_SETTLES_MS
            if settled and hand_back(services, case, reason, live.state_at, wrap_up):
                report.count("HandedBack")
        _transcript(services, case, marks, live.changed_at, report)
        return
    if live.state is CaseState.CLOSED:
        _transcript(services, case, marks, live.changed_at, report)


def _wait_update(
    services: Services,
    case: CaseRecord,
    marks: Marks,
    now: int,
    figures: dict[str, Figures | None],
    report: SweepReport,
) -> None:
    queue_id = case.live.queue_id
    cache = parts(services).figures
    if not queue_id or cache is None:
        return
    if queue_id not in figures:
        try:
            figures[queue_id] = cache.get(queue_id)
        except CasebridgeError:
            figures[queue_id] = None
    found = figures[queue_id]
    if found is None or found.figures is None or now - marks.wait_sent_at < WAIT_UPDATE_EVERY_MS:
        return
    detail = {
        "queueId": queue_id,
        "waiting": found.figures.waiting,
        "estimatedWaitSeconds": estimate_wait_seconds(found.figures),
    }
    shown = json.dumps(detail, sort_keys=True)
    if shown == marks.wait_sent:
        return
    assert case.conversation_id is not None
    event_id = f"wait-{case.conversation_id}-{now}"
    record_own_event(services, case.case_id, case.conversation_id, "WaitUpdate", event_id, detail)
    set_marks(services.store, case.case_id, waitSent=shown, waitSentAt=now)
    report.count("WaitUpdate")


def _how_it_ended(services: Services, case_id: str) -> tuple[str, str | None]:
    """The hand-back's reason and wrap-up code: `agent-ended` when an agent left since the last one joined,
    `idle` when only 8x8's CONVERSATION_UPDATE idle ended the interaction (its meaning is undocumented)."""
    entries, _ = transcript.timeline(services, case_id)
    idle = False
    for entry in reversed(entries):
        if entry.type == "AgentLeft":
            code = entry.detail.get("wrapUpCode")
            return "agent-ended", str(code) if code else None
        if entry.type == "ConversationIdle":
            idle = True
        elif entry.type == "AgentJoined":
            break
    return ("idle" if idle else "agent-ended"), None


def _transcript(services: Services, case: CaseRecord, marks: Marks, closed_at: int, report: SweepReport) -> None:
    if marks.transcript_for is not None and marks.transcript_for >= closed_at:
        fresh = services.store.get_case(case.case_id)
        if fresh is not None and fresh.live.state in (CaseState.AGENT_LEFT, CaseState.CLOSED):
            leave_sweep(services.store, case.case_id, fresh.version)
        return
    key, written = transcript.write(services, case.case_id, case.conversation_id, closed_at)
    assert case.conversation_id is not None
    record_own_event(
        services,
        case.case_id,
        case.conversation_id,
        "TranscriptReady",
        f"transcript-{case.conversation_id}-{closed_at}",
        {"transcriptId": key.rsplit("/", 1)[-1].removesuffix(".json"), "messages": len(written["messages"])},
    )
    raise_mark(services.store, case.case_id, "transcriptFor", closed_at)
    report.count("TranscriptReady")
