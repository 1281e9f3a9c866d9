"""The invariants of files and of the dead-letter redrive, checked once the world is quiet.

8. every accepted message with files reaches 8x8 with each of its files, once, uploaded to the same conversation
   with the content the channel uploaded (or the message has its MessageFailed: invariant 2);
9. every agent file 8x8 sent, in an event casebridge answered 2xx, is on the case's timeline as a casebridge
   attachmentId (never 8x8's pre-signed URL, on the timeline or on the bus), and its copy ends in the bucket with
   8x8's content, or is reported failed (8x8 no longer had it, or the copy failed on its last receive);
10. a message moved back from the dead-letter queue (casebridge's redrive tool, or SQS's own redrive with the body
   as it was) is delivered, or fails again and is reported once more: as many MessageFailed as dead-letterings,
   never one more; no redrive is dropped by a deduplication window.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from tests.simulation.contact_center import FILE_HOST

if TYPE_CHECKING:
    from tests.simulation.simulation import Simulation


def check_files_and_redrive(sim: Simulation) -> list[str]:
    return files_reach_contact_center(sim) + agent_files_copied(sim) + redriven_once(sim)


def files_reach_contact_center(sim: Simulation) -> list[str]:
    violations: list[str] = []
    for message in sim.channel.messages:
        if not message.files or not message.accepted:
            continue
        for delivery in (d for d in sim.model.deliveries if d.text == message.text):
            references = delivery.attachments
            if len(references) != len(message.files) or len(set(references)) != len(references):
                violations.append(
                    f"[8 files] message {message.message_id} ({message.text}) reached 8x8 referencing "
                    f"{references}, not its {len(message.files)} file(s) once each"
                )
                continue
            for reference, (file_name, content) in zip(references, message.files, strict=True):
                upload = sim.model.uploads.get(reference)
                if upload is None or upload.conversation_id != delivery.conversation_id or upload.body != content:
                    violations.append(
                        f"[8 files] message {message.message_id} ({message.text}) reached 8x8 with {reference} "
                        f"in place of {file_name}: not that file uploaded to its conversation"
                    )
    return violations


def agent_files_copied(sim: Simulation) -> list[str]:
    from casebridge.attachments.agent_files import inbound_attachment_id  # noqa: PLC0415
    from casebridge.store.codec import from_item  # noqa: PLC0415

    violations: list[str] = []
    for entry in sim.bus.published:
        if FILE_HOST in json.dumps(entry["detail"]):
            violations.append(
                f"[9 agent files] {entry['type']} {entry['detail'].get('eventId')} went on the bus with 8x8's "
                "pre-signed URL"
            )
    recorded = {(item or {}).get("conversationId") for item in map(sim.case_item, sim.case_ids)}
    for event in sim.model.emitted:
        if not event.files or not event.answered_2xx or event.conversation_id not in recorded:
            continue
        conversation = sim.model.conversations[event.conversation_id]
        case_id = conversation.case_id
        for entry in (e for e in sim.timeline(case_id) if e["eventId"] == event.event_id):
            references = (entry.get("detail") or {}).get("attachments") or []
            if FILE_HOST in json.dumps(references):
                violations.append(f"[9 agent files] {event.event_id} is on the timeline with 8x8's pre-signed URL")
            ids = [str(r.get("attachmentId")) for r in references if isinstance(r, dict)]
            expected = [inbound_attachment_id(case_id, conversation.id, f) for f in event.files]
            if ids != expected:
                violations.append(
                    f"[9 agent files] {event.event_id} is on the timeline with attachments {ids}, "
                    f"not casebridge's ids of 8x8's files {event.files}"
                )
                continue
            for attachment_id, file_id in zip(ids, event.files, strict=True):
                violations += _copy_ended(sim, case_id, attachment_id, file_id, from_item)
    return violations


def _copy_ended(sim: Simulation, case_id: str, attachment_id: str, file_id: str, from_item: Any) -> list[str]:
    item = sim.ddb.items.get((f"CASE#{case_id}", f"ATTACHMENT#{attachment_id}"))
    record = from_item(item) if item else {}
    status = record.get("status")
    agent_file = sim.model.files[file_id]
    where = f"[9 agent files] {file_id} ({attachment_id}) of case {case_id}"
    if status == "ready":
        stored = sim.s3.objects.get(str(record.get("s3Key")))
        if stored is None or stored.body != agent_file.body:
            return [f"{where} is ready but the bucket does not hold 8x8's file at {record.get('s3Key')}"]
        return []
    if status == "failed":
        if agent_file.gone or str(record.get("reason", "")).startswith("copy failed after"):
            return []
        return [f"{where} was reported failed though 8x8 still had it: {record.get('reason')}"]
    return [f"{where} is {status or 'not recorded'} once the world is quiet: its copy never ended"]


def redriven_once(sim: Simulation) -> list[str]:
    violations: list[str] = []
    # A dead-lettering is named by its deduplication id (the queue message dead-lettered): one sent again past
    # the DLQ's deduplication window (its record lost, the queue message back minutes later) is the same one.
    named: dict[str, set[str]] = {}
    texts: dict[str, str] = {}
    for message in sim.dlq.sent:
        if message.deduplication_id.startswith("sqs-redrive-"):
            continue  # SQS's silent move: the sender never knew (its own invariant is 2's)
        body = json.loads(message.body)
        named.setdefault(str(body.get("messageId")), set()).add(message.deduplication_id)
        texts[str(body.get("messageId"))] = str(body.get("text", ""))
    dead_letterings = Counter({message_id: len(ids) for message_id, ids in named.items()})
    failed: Counter[str] = Counter()
    for case_id in sim.case_ids:
        for entry in sim.timeline(case_id):
            if entry["type"] == "MessageFailed":
                failed[str(entry["detail"]["messageId"])] += 1
    delivered = Counter(d.text for d in sim.model.deliveries)
    for message_id, count in sorted(dead_letterings.items()):
        reported = failed[message_id]
        if reported > count:
            violations.append(
                f"[10 redrive] message {message_id} was reported failed {reported} times after "
                f"{count} dead-lettering(s)"
            )
        elif not delivered[texts[message_id]] and reported != count:
            violations.append(
                f"[10 redrive] message {message_id} was dead-lettered {count} times, never delivered, and reported "
                f"failed {reported} time(s)"
            )
    # Each move back: the message is delivered (then or earlier), or dead-lettered again after it.
    moves = [(m, "scripts/redrive.py") for m in sim.queue.sent if m.deduplication_id.startswith("redrive-")]
    moves += [(m, "SQS's DLQ redrive") for m in sim.dlq.moved_back]
    for moved, how in moves:
        body = json.loads(moved.body)
        message_id = str(body.get("messageId"))
        again = any(
            json.loads(m.body).get("messageId") == message_id and m.sent_at >= moved.sent_at for m in sim.dlq.sent
        )
        if not delivered[str(body.get("text", ""))] and not again:
            violations.append(
                f"[10 redrive] message {message_id} moved back by {how} at {moved.sent_at:.1f} s was neither "
                "delivered nor dead-lettered again"
            )
    for dropped in sim.queue.dropped:
        if not dropped.deduplication_id.startswith(("redrive-", "dlq-", "sqs-redrive-")):
            continue
        body = json.loads(dropped.body)
        if not delivered[str(body.get("text", ""))]:
            violations.append(
                f"[10 redrive] message {body.get('messageId')} moved back from the dead-letter queue was dropped by "
                f"the deduplication window ({dropped.deduplication_id}) and never delivered"
            )
    return violations
