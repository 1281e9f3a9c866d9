"""The invariants every simulated history must keep, checked once the world is quiet.

1. at 8x8, at most one conversation per case;
2. every accepted message is at 8x8, or has its MessageFailed and waits in the dead-letter queue; a duplicate only
   after an ambiguous attempt (one whose outcome its sender did not record);
3. per case, messages reach 8x8 in the order they were accepted;
4. every event 8x8 sent and casebridge answered 2xx is on its case's timeline exactly once and on the bus at least
   once with the same eventId (more than once only after a fault in a delivery that published it); every
   timeline entry reaches the bus;
5. a channel reading the timeline page by page with its cursor ends up with every event, none twice;
6. the case's derived state is the state its 8x8 events give in 8x8's order, whatever order they arrived in;
7. no 5xx for a valid request unless a fault was injected into it, no 4xx to a genuine 8x8 event, and nothing
   pending in any outbox once the world is quiet;
8.-10. files both ways and the dead-letter redrive: invariants_files.py.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from tests.simulation.invariants_files import check_files_and_redrive

if TYPE_CHECKING:
    from tests.simulation.simulation import Simulation

# 8x8's own event types, as the timeline names them (the connector's own are ConversationOpened, MessageFailed...).
EIGHT_BY_EIGHT_TYPES = (
    "Queued",
    "AgentJoined",
    "AgentLeft",
    "Transferred",
    "AgentMessage",
    "CustomerLeft",
    "ConversationIdle",
)


def check_invariants(sim: Simulation) -> list[str]:
    violations: list[str] = []
    violations += one_conversation_per_case(sim)
    violations += messages_delivered_once_in_order(sim)
    violations += events_on_timeline_and_bus(sim)
    violations += answers_and_outbox(sim)
    violations += derived_state_independent_of_arrival(sim)
    violations += check_files_and_redrive(sim)
    # Last: the channel's final reads go through the real API, which publishes what is pending (checked above).
    violations += cursor_reads_everything_once(sim)
    return violations


def one_conversation_per_case(sim: Simulation) -> list[str]:
    by_case: dict[str, list[str]] = {}
    for conversation in sim.model.conversations.values():
        by_case.setdefault(conversation.case_id, []).append(conversation.id)
    return [
        f"[1 one conversation] case {case} has {len(ids)} conversations at 8x8: {ids}"
        for case, ids in sorted(by_case.items())
        if len(ids) > 1
    ]


def _queue_bodies(sim: Simulation) -> list[tuple[int, dict[str, Any], str]]:
    """(sequence, body, queue name) of every message ever enqueued, both queues."""
    found = []
    for queue in (sim.queue, sim.dlq):
        for message in queue.sent:
            found.append((message.sequence, json.loads(message.body), queue.name))
    return found


def messages_delivered_once_in_order(sim: Simulation) -> list[str]:
    violations: list[str] = []
    bodies = _queue_bodies(sim)
    first_enqueued: dict[str, int] = {}
    redriven: set[str] = set()
    for sequence, body, queue in bodies:
        if queue == sim.queue.name and body.get("redrive", 0) == 0:
            first_enqueued.setdefault(body["messageId"], sequence)
        if body.get("redrive", 0) > 0 or queue == sim.dlq.name:
            redriven.add(body["messageId"])
    in_dlq = {json.loads(m.body)["messageId"] for m in sim.dlq.messages}
    deliveries_by_text: dict[str, list[int]] = {}
    for index, delivery in enumerate(sim.model.deliveries):
        deliveries_by_text.setdefault(delivery.text, []).append(index)
    failed_events: dict[str, set[str]] = {}
    for case_id in sim.case_ids:
        for entry in sim.timeline(case_id):
            if entry["type"] == "MessageFailed":
                failed_events.setdefault(str(entry["detail"]["messageId"]), set()).add(entry["eventId"])
    order: dict[str, list[tuple[int, int, str]]] = {}
    for message in sim.channel.messages:
        if not message.accepted or message.message_id is None:
            continue
        mid = message.message_id
        delivered = deliveries_by_text.get(message.text, [])
        failed = failed_events.get(mid, set())
        if not delivered and not failed:
            violations.append(
                f"[2 exactly once] accepted message {mid} ({message.text}) is lost: not at 8x8, no MessageFailed"
            )
        if not delivered and failed and mid not in in_dlq:
            violations.append(
                f"[2 exactly once] message {mid} ({message.text}) failed but is not in the dead-letter queue"
            )
        ambiguous = sum(1 for index in delivered if not _confirmed(sim, index, mid))
        if len(delivered) > 1 + ambiguous:
            violations.append(
                f"[2 exactly once] message {mid} ({message.text}) is at 8x8 {len(delivered)} times "
                f"after {ambiguous} ambiguous attempt(s)"
            )
        if delivered and mid in first_enqueued and mid not in redriven:
            order.setdefault(message.case_id, []).append((first_enqueued[mid], delivered[0], message.text))
    for case_id, items in sorted(order.items()):
        items.sort()
        for (_, first_at, first), (_, second_at, second) in itertools.pairwise(items):
            if second_at < first_at:
                violations.append(f"[3 order] case {case_id}: {second} reached 8x8 before {first}, accepted earlier")
    return violations


def _confirmed(sim: Simulation, delivery_index: int, message_id: str) -> bool:
    """The send's own invocation recorded the message as sent after it (so a redelivery will not send again)."""
    delivery = sim.model.deliveries[delivery_index]
    return delivery.answered and any(
        pid == delivery.pid and mid == message_id and status == "sent" and at >= delivery.at
        for pid, mid, status, at in sim.message_writes
    )


def events_on_timeline_and_bus(sim: Simulation) -> list[str]:
    violations: list[str] = []
    bus = sim.bus_by_event()
    timelines = {case_id: sim.timeline(case_id) for case_id in sim.case_ids}
    for case_id, entries in timelines.items():
        counts = Counter(str(e["eventId"]) for e in entries)
        for event_id, count in sorted(counts.items()):
            if count > 1:
                violations.append(f"[4 timeline] case {case_id}: event {event_id} is on the timeline {count} times")
        pending = set((sim.case_item(case_id) or {}).get("pendingPublish") or ())
        for entry in entries:
            if str(entry["eventId"]) not in bus:
                where = "still on the case's outbox" if entry["sk"] in pending else "on no outbox: lost"
                violations.append(
                    f"[4 bus] case {case_id}: {entry['type']} {entry['eventId']} is on the timeline "
                    f"but never reached the bus ({where})"
                )
    orphans = _orphan_conversations(sim)
    for event in sim.model.emitted:
        if not event.answered_2xx or event.conversation_id in orphans:
            continue  # an orphan conversation's events: invariant 1 reports the orphan itself
        conversation = sim.model.conversations[event.conversation_id]
        on_timeline = sum(1 for e in timelines.get(conversation.case_id, []) if e["eventId"] == event.event_id)
        publishers = bus.get(event.event_id, [])
        if event.timeline and on_timeline != 1:
            violations.append(
                f"[4 timeline] {event.kind} {event.event_id} of case {conversation.case_id} was answered "
                f"2xx and is on the timeline {on_timeline} times"
            )
        if not event.timeline and event.kind in ("echo", "typing") and on_timeline:
            violations.append(f"[4 timeline] {event.kind} {event.event_id} is on the timeline")
        if event.bus and event.kind != "typing" and not publishers:  # typing is best effort (ephemeral)
            violations.append(
                f"[4 bus] {event.kind} {event.event_id} of case {conversation.case_id} was answered 2xx "
                "and never reached the bus"
            )
        clean_twice = [pid for pid, n in Counter(publishers).items() if n > 1 and not sim.procs[pid].faults]
        if clean_twice:
            violations.append(
                f"[4 bus] {event.kind} {event.event_id} was published {len(publishers)} times, "
                f"twice by one invocation that met no fault (p{clean_twice[0]})"
            )
        else:
            # A second publish is excused by each invocation that published it and met a fault (its outcome was
            # unknown to it, or its record failed), and by each 2xx 8x8 never heard.
            excused = event.faulted_deliveries + sum(1 for pid in set(publishers) if sim.procs[pid].faults)
            if len(publishers) > 1 + excused:
                violations.append(
                    f"[4 bus] {event.kind} {event.event_id} was published {len(publishers)} times after "
                    f"{excused} faults that could explain it"
                )
    return violations


def _orphan_conversations(sim: Simulation) -> set[str]:
    """Conversations no case recorded whose events are excused: a second one of a case (invariant 1 reports it),
    or, on Chat API v2 (no lookup), one made by an ambiguous create nobody opened again. On the Gateway the outbox
    sweeper adopts such a conversation once its create settled, so its events must reach the case."""
    recorded = {(item or {}).get("conversationId") for item in map(sim.case_item, sim.case_ids)}
    per_case = Counter(c.case_id for c in sim.model.conversations.values())
    return {
        c.id
        for c in sim.model.conversations.values()
        if c.id not in recorded and (per_case[c.case_id] > 1 or sim.api == "chat-api-v2")
    }


def answers_and_outbox(sim: Simulation) -> list[str]:
    violations: list[str] = []
    for answer in sim.channel.answers:
        if answer.status >= 500 and not answer.faults:
            violations.append(
                f"[7 no 5xx] {answer.route} for {answer.case_id} answered {answer.status} with no fault "
                f"injected: {answer.body}"
            )
    for event_id, status, faults in sim.webhook_answers:
        if 400 <= status < 500 and status != 429:  # 429: Lambda throttled the intake, 8x8 retries
            violations.append(f"[7 no 4xx to 8x8] genuine event {event_id} was answered {status}")
        elif status >= 500 and not faults:
            violations.append(f"[7 no 5xx] event {event_id} was answered {status} with no fault injected")
    for case_id in sim.case_ids:
        item = sim.case_item(case_id)
        pending = sorted((item or {}).get("pendingPublish") or ())
        if pending:
            violations.append(
                f"[7 outbox] case {case_id} still has {len(pending)} event(s) waiting to be published "
                f"once the world is quiet: {pending[:3]}"
            )
    return violations


def derived_state_independent_of_arrival(sim: Simulation) -> list[str]:
    from casebridge.events import EventKind  # noqa: PLC0415
    from casebridge.state import LiveState, apply_event  # noqa: PLC0415

    violations: list[str] = []
    for case_id in sim.case_ids:
        item = sim.case_item(case_id)
        if item is None or case_id in sim.channel.left:
            continue  # the connector's own transitions (the customer leaving) are ordered by its clock, not 8x8's
        events = [e for e in sim.timeline(case_id) if e["type"] in EIGHT_BY_EIGHT_TYPES]
        live = LiveState()
        for entry in sorted(events, key=lambda e: (int(e["occurredAt"]), str(e["eventId"]))):
            detail = {k: v for k, v in (entry.get("detail") or {}).items()}
            live = apply_event(live, EventKind(entry["type"]), int(entry["occurredAt"]), detail) or live
        stored = (
            item.get("state", "open"),
            item.get("agentId"),
            item.get("queueId"),
            bool(item.get("transferPending")),
        )
        expected = (live.state.value, live.agent_id, live.queue_id, live.transfer_pending)
        if stored != expected:
            violations.append(
                f"[6 derived state] case {case_id} is {stored} but its events in 8x8's order give {expected}"
            )
    return violations


def cursor_reads_everything_once(sim: Simulation) -> list[str]:
    for reader in sim.channel.readers.values():
        sim.channel.read_page(reader, faultless=True, until_empty=True)
    sim.world.run()
    violations: list[str] = []
    for case_id, reader in sorted(sim.channel.readers.items()):
        on_timeline = [str(e["eventId"]) for e in sim.timeline(case_id)]
        if not on_timeline and not reader.seen:
            continue
        missing = sorted(set(on_timeline) - set(reader.seen))
        twice = sorted(e for e, n in Counter(reader.seen).items() if n > 1)
        if missing:
            violations.append(
                f"[5 cursor] case {case_id}: a reader paging {reader.limit} at a time never got {missing}"
            )
        if twice:
            violations.append(f"[5 cursor] case {case_id}: a reader got {twice} twice")
    return violations
