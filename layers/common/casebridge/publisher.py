"""Publishes the business's normalised events to the EventBridge bus (detail-type = event type).

EventBridge refuses an entry over 256 KB, counted as it counts: the detail's UTF-8 bytes (so the detail is
written as UTF-8, never with ASCII escapes, which make a non-ASCII character 6 to 12 bytes) plus source,
detail-type, resources and 14 bytes of time. An event over the limit is published as a reference: the same
event without its content fields (`omitted` names them), which stay on the timeline under the same eventId.
A request carries at most 10 entries and 256 KB in all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from casebridge import aws
from casebridge.business_api.views import event_view
from casebridge.observability import MetricUnit, logger, metrics
from casebridge.store.records import TimelineEntry

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "casebridge"
MAX_ENTRY_BYTES = 256 * 1024
MAX_ENTRIES_PER_CALL = 10
_TIME_BYTES = 14
# Dropped, in this order, until an oversized event fits: its content, which the timeline keeps.
_CONTENT_FIELDS = ("text", "cards", "attachments")


class PublishFailed(Exception):
    """EventBridge refused an entry; the caller answers so that the work is retried."""


def entry_size(entry: PutEventsRequestEntryTypeDef) -> int:
    """An entry's size as EventBridge counts it against its 256 KB."""
    parts = [entry.get("Source", ""), entry.get("DetailType", ""), entry.get("Detail", ""), *entry.get("Resources", [])]
    return _TIME_BYTES + sum(len(part.encode("utf-8")) for part in parts)


def _detail(view: dict[str, Any]) -> str:
    return json.dumps(view, separators=(",", ":"), ensure_ascii=False)


class EventPublisher:
    client = aws.InjectableClient(aws.events_client)

    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self.bus_name = bus_name
        self.client = client

    def entry(self, entry: TimelineEntry, case_id: str) -> PutEventsRequestEntryTypeDef:
        view: dict[str, Any] = dict(event_view(entry, case_id))
        made: PutEventsRequestEntryTypeDef = {
            "EventBusName": self.bus_name,
            "Source": SOURCE,
            "DetailType": entry.type,
            "Detail": _detail(view),
            "Resources": [],
        }
        omitted: list[str] = []
        for name in _CONTENT_FIELDS:  # a bounded number of steps: never a loop on EventBridge's answer
            if entry_size(made) <= MAX_ENTRY_BYTES:
                break
            if name in view:
                omitted.append(name)
                made["Detail"] = _detail({**{k: v for k, v in view.items() if k not in omitted}, "omitted": omitted})
        if omitted:
            metrics.add_metric(name="EventsPublishedAsReference", unit=MetricUnit.Count, value=1)
            logger.warning("event over EventBridge's size published as a reference", extra={"omitted": omitted})
        return made

    def publish(self, case_id: str, entries: Sequence[TimelineEntry]) -> None:
        for batch in _requests([self.entry(entry, case_id) for entry in entries]):
            answer = self.client.put_events(Entries=batch)
            if answer.get("FailedEntryCount"):
                codes = {str(e.get("ErrorCode")) for e in answer["Entries"] if e.get("ErrorCode")}
                raise PublishFailed(f"EventBridge refused {answer['FailedEntryCount']} event(s): {sorted(codes)}")


def _requests(entries: list[PutEventsRequestEntryTypeDef]) -> Iterator[list[PutEventsRequestEntryTypeDef]]:
    """PutEvents calls of at most 10 entries and 256 KB in all."""
    batch: list[PutEventsRequestEntryTypeDef] = []
    size = 0
    for entry in entries:
        grows = entry_size(entry)
        if batch and (len(batch) == MAX_ENTRIES_PER_CALL or size + grows > MAX_ENTRY_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += grows
    if batch:
        yield batch
