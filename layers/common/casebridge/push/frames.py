"""What a push carries: the case event exactly as on the bus and the timeline, plus its place on the case's
timeline (`sequence`, and the `cursor` that `GET /cases/{id}/events?after=` and a reconnect take)."""

from __future__ import annotations

import re
from typing import Any

from casebridge.business_api.views import event_view
from casebridge.errors import InvalidRequest
from casebridge.store.codec import SEQUENCE_PREFIX, decode_cursor
from casebridge.store.records import TimelineEntry

_SEQUENCE_KEY = re.compile(re.escape(SEQUENCE_PREFIX) + r"([0-9]{1,15})")


def entry_frame(entry: TimelineEntry, case_id: str) -> dict[str, Any]:
    """The event as on the timeline (it carries its `sequence` and `cursor`)."""
    return dict(event_view(entry, case_id))


def sequence_of_cursor(cursor: str) -> int:
    """The sequence a timeline cursor points at. InvalidRequest: not a cursor of a sequenced entry."""
    found = _SEQUENCE_KEY.fullmatch(decode_cursor(cursor))
    if found is None:
        raise InvalidRequest("'after' is not a cursor of an event this API pushed")
    return int(found.group(1))


def sequence_of(detail: dict[str, Any]) -> int:
    """The timeline sequence of a bus event; 0 for events that are not on the timeline (AgentTyping)."""
    sequence = detail.get("sequence")
    if isinstance(sequence, int) and sequence > 0:
        return sequence
    cursor = detail.get("cursor")
    if isinstance(cursor, str) and cursor:
        try:
            return sequence_of_cursor(cursor)
        except InvalidRequest:
            return 0
    return 0
