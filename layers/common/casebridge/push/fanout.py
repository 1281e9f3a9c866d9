"""The fan-out: each case event on the bus goes to that case's widget connections (@connections) and, when a
channel webhook is configured, onto the case's FIFO group for the signed webhook sender.

A connection gets the case's timeline in order, each entry once: its `sentSeq` says how far it got, and a push
first claims the range it is about to send by moving `sentSeq` with a conditional write. An event whose
predecessors this connection has not had yet (a reconnect with an older cursor, an earlier event's fan-out
still running or failed) makes the push read them from the timeline and send them first. Events that are not
on the timeline (AgentTyping) go to every connection as they come.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from casebridge import aws
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.push.connections import ConnectionGone, Connections
from casebridge.push.frames import detail_frame, entry_frame, sequence_of
from casebridge.services import Services
from casebridge.store.push import ConnectionRecord

PAGE = 50  # timeline entries read (and claimed) at a time when a connection catches up


class PushIncomplete(Exception):
    """Some connection could not be reached for a reason other than being gone: the invocation fails so that
    EventBridge delivers the event again (the connections that got it have it claimed and are skipped)."""


def push_timeline(
    services: Services,
    connections: Connections,
    connection: ConnectionRecord,
    event: tuple[int, dict[str, Any]] | None = None,
) -> int:
    """Send the connection what it has not had of its case's timeline, in order. `event`: the bus event that
    triggered this (its sequence and frame); it is sent as it is when it is the very next one, without reading
    the timeline. Returns how many entries were sent. ConnectionGone: the widget left."""
    store, case_id, connection_id = services.store, connection.case_id, connection.connection_id
    sent, count = connection.sent_seq, 0
    while True:
        if event is not None and event[0] <= sent:
            return count
        if event is not None and event[0] == sent + 1:
            frames = [event]
        else:
            frames = [(e.sequence, entry_frame(e, case_id)) for e in store.timeline_after(case_id, sent, PAGE)]
            if not frames:
                return count
        last = frames[-1][0]
        if not store.claim_push(case_id, connection_id, sent, last):
            current = store.get_connection(case_id, connection_id)
            if current is None:
                raise ConnectionGone(connection_id)
            sent = current.sent_seq  # another push moved it: go on from there
            continue
        posted = sent
        try:
            for sequence, frame in frames:
                connections.post(connection_id, frame)
                posted = sequence
        except ConnectionGone:
            raise
        except Exception:
            # Give back what was claimed and not posted (unless another push moved the cursor meanwhile).
            store.claim_push(case_id, connection_id, last, posted)
            raise
        count += len(frames)
        sent = last
        if event is None and len(frames) < PAGE:
            return count


def fan_out(services: Services, connections: Connections, detail: dict[str, Any]) -> int:
    """One bus event to its case's connections and webhook queue. Returns the frames posted."""
    case_id = detail.get("caseId")
    if not isinstance(case_id, str) or not case_id:
        logger.warning("bus event without a case; nothing to push", extra={"eventId": detail.get("eventId")})
        return 0
    logger.append_keys(caseId=case_id, eventId=detail.get("eventId"))
    sequence = sequence_of(detail)
    frame = detail_frame(detail, sequence)
    posted, failed = 0, 0
    for connection in services.store.case_connections(case_id):
        try:
            if sequence:
                posted += push_timeline(services, connections, connection, (sequence, frame))
            else:
                connections.post(connection.connection_id, frame)
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
        enqueue_webhook(services, case_id, sequence, frame)
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
