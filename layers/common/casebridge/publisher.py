"""Publishes the business's normalised events to the EventBridge bus (detail-type = event type)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from casebridge import aws
from casebridge.business_api.views import event_view
from casebridge.store.records import TimelineEntry

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "casebridge"


class PublishFailed(Exception):
    """EventBridge refused an entry; the caller answers so that the work is retried."""


class EventPublisher:
    client = aws.InjectableClient(aws.events_client)

    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self.bus_name = bus_name
        self.client = client

    def publish(self, case_id: str, entries: Sequence[TimelineEntry]) -> None:
        batch: list[PutEventsRequestEntryTypeDef] = [
            {
                "EventBusName": self.bus_name,
                "Source": SOURCE,
                "DetailType": entry.type,
                "Detail": json.dumps(event_view(entry, case_id), separators=(",", ":")),
                "Resources": [],
            }
            for entry in entries
        ]
        for start in range(0, len(batch), 10):  # PutEvents takes 10 entries a call
            answer = self.client.put_events(Entries=batch[start : start + 10])
            if answer.get("FailedEntryCount"):
                codes = {str(e.get("ErrorCode")) for e in answer["Entries"] if e.get("ErrorCode")}
                raise PublishFailed(f"EventBridge refused {answer['FailedEntryCount']} event(s): {sorted(codes)}")
