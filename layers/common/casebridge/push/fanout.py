"""The fan-out: each case event on the bus goes to that case's widget connections (@connections) and, when a
channel webhook is configured, onto the case's FIFO group for the signed webhook sender.

A connection gets the case's timeline in order, each entry once: its `sentSeq` says how far it got, and a push
first claims the range it is about to send by moving `sentSeq` with a conditional write. A push sends what
follows the connection's `sentSeq` on the timeline, so entries it has not had yet (a reconnect with an older
cursor, an earlier event's fan-out still running or failed) go first, in order. Events that are not on the
timeline (AgentTyping) go to every connection as they come.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

from casebridge import aws
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.push.connections import ConnectionGone, Connections
from casebridge.push.frames import entry_frame, sequence_of
from casebridge.services import Services
from casebridge.store.push import ConnectionRecord
from casebridge.store.records import TimelineEntry

PAGE = 50  # timeline entries read (and claimed) at a time when a connection catches up
COMMIT_WAITS = (0.003, 0.006, 0.012, 0.025, 0.05, 0.1, 0.2, 0.4, 0.0)  # about 0.8 s for the write to commit


@cache
def _reads() -> ThreadPoolExecutor:
    """The fan-out's second read runs beside its first (made on first use, kept by the container)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="fan-out-read")


class PushIncomplete(Exception):
    """Some connection could not be reached for a reason other than being gone: the invocation fails so that
    EventBridge delivers the event again (the connections that got it have it claimed and are skipped)."""


def push_timeline(
    services: Services,
    connections: Connections,
    connection: ConnectionRecord,
    read: tuple[int, list[TimelineEntry]] | None = None,
) -> int:
    """Send the connection what it has not had of its case's timeline, in order, each entry once. `read`: the
    timeline as the caller already read it after a sequence (used when the connection is at that sequence).
    Returns how many entries were sent. ConnectionGone: the widget left."""
    store, case_id, connection_id = services.store, connection.case_id, connection.connection_id
    sent, count = connection.sent_seq, 0
    while True:
        if read is not None and read[0] == sent:
            entries, read = read[1], None
        else:
            entries = store.timeline_after(case_id, sent, PAGE)
        if not entries:
            return count
        last = entries[-1].sequence
        if not store.claim_push(case_id, connection_id, sent, last):
            current = store.get_connection(case_id, connection_id)
            if current is None:
                raise ConnectionGone(connection_id)
            sent = current.sent_seq  # another push moved it: go on from there
            continue
        posted = sent
        try:
            for entry in entries:
                connections.post(connection_id, entry_frame(entry, case_id))
                posted = entry.sequence
        except ConnectionGone:
            raise
        except Exception:
            # Give back what was claimed and not posted (unless another push moved the cursor meanwhile).
            store.claim_push(case_id, connection_id, last, posted)
            raise
        count += len(entries)
        sent = last
        if len(entries) < PAGE:
            return count


def committed_from(services: Services, case_id: str, sequence: int) -> list[TimelineEntry] | None:
    """The timeline from `sequence` on, once that entry is committed. Every event is recorded before it is
    published (docs/guarantees.md), so it normally is; a read that does not show it yet waits a little. None: not
    on the timeline after the wait."""
    for pause in COMMIT_WAITS:
        entries = services.store.timeline_after(case_id, sequence - 1, PAGE)
        if entries and entries[0].sequence == sequence:
            return entries
        if entries and entries[0].sequence > sequence:
            return None  # not a sequence this case will have (an entry from before sequences)
        time.sleep(pause)
    return None


def fan_out(services: Services, connections: Connections, detail: dict[str, Any]) -> int:
    """One bus event to its case's connections and webhook queue. Returns the frames posted. The timeline, not
    the bus event, is what is pushed: the entry it names, as it was committed, and what the connection has not
    had before it."""
    case_id = detail.get("caseId")
    if not isinstance(case_id, str) or not case_id:
        logger.warning("bus event without a case; nothing to push", extra={"eventId": detail.get("eventId")})
        return 0
    logger.append_keys(caseId=case_id, eventId=detail.get("eventId"))
    sequence = sequence_of(detail)
    read: tuple[int, list[TimelineEntry]] | None = None
    # The case's connections are read while the entry is (two round trips at once, not one after the other).
    connections_read: Future[list[ConnectionRecord]] = _reads().submit(services.store.case_connections, case_id)
    if sequence:
        committed = committed_from(services, case_id, sequence)
        if committed is None:
            connections_read.cancel()
            logger.info("bus event not (yet) on the timeline; its republication is pushed")
            metrics.add_metric(name="ChannelPushesNotCommitted", unit=MetricUnit.Count, value=1)
            return 0
        read = (sequence - 1, committed)
    posted, failed = 0, 0
    for connection in connections_read.result():
        try:
            if sequence:
                if connection.sent_seq < sequence:
                    posted += push_timeline(services, connections, connection, read)
            else:
                connections.post(connection.connection_id, dict(detail))
                posted += 1
        except ConnectionGone:
            services.store.drop_connection(case_id, connection.connection_id)
            metrics.add_metric(name="ChannelConnectionsGone", unit=MetricUnit.Count, value=1)
            logger.info("widget connection gone; dropped", extra={"connectionId": connection.connection_id})
        except Exception:
            failed += 1
            logger.exception("push to a widget connection failed", extra={"connectionId": connection.connection_id})
    if posted:
        metrics.add_metric(name="ChannelFramesPushed", unit=MetricUnit.Count, value=posted)
    if services.settings.channel_webhook_queue_url:
        enqueue_webhook(services, case_id, sequence, dict(detail))
    if failed:
        raise PushIncomplete(f"{failed} connection(s) of case {case_id} could not be reached")
    return posted


def enqueue_webhook(services: Services, case_id: str, sequence: int, frame: dict[str, Any]) -> None:
    """On the case's FIFO group: the sender delivers a case's events one at a time, in timeline order."""
    event_id = str(frame.get("eventId") or "")
    aws.sqs_client().send_message(
        QueueUrl=services.settings.channel_webhook_queue_url,
        MessageBody=json.dumps({"caseId": case_id, "sequence": sequence, "event": frame}, separators=(",", ":")),
        MessageGroupId=case_id,
        # The same event published twice (at-least-once bus) is queued once.
        MessageDeduplicationId=hashlib.sha256(f"{event_id}#{sequence}".encode()).hexdigest(),
    )
