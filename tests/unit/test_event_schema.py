"""The business event schema is documented once, from business_api.views, and what the connector publishes fits it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from casebridge.business_api.views import EVENT_FIELDS, event_json_schema, event_view
from casebridge.events import EventKind
from casebridge.store.records import TimelineEntry

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "event-schema.json"


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads(SCHEMA_PATH.read_text())
    assert committed == event_json_schema(), "regenerate docs/event-schema.json: python -m scripts.event_schema"


def test_every_event_kind_the_intake_publishes_is_documented() -> None:
    # A participant message is never published as such: an echo (kept) or a SystemMessage.
    internal = {EventKind.VERIFY.value, EventKind.UNHANDLED.value, EventKind.PARTICIPANT_MESSAGE.value}
    published = {k.value for k in EventKind} - internal
    assert published <= set(EVENT_FIELDS)


@pytest.mark.parametrize(
    ("event_type", "detail"),
    [
        ("Queued", {"queueId": "101", "queueName": "Support"}),
        ("AgentJoined", {"agentId": "a-1"}),
        ("AgentJoined", {"agentId": "a-1", "agentName": "Grace"}),
        ("AgentMessage", {"agentId": "a-1", "text": "Hi", "cards": [{"contentType": "x", "content": {}}]}),
        ("AgentMessage", {"agentId": "a-1", "text": "Hi", "textTruncated": True, "textLength": 500_000}),
        ("SystemMessage", {"senderType": "bot", "text": "Hi", "cardsDropped": 8}),
        ("AgentTyping", {"agentId": "a-1", "typing": True}),
        ("CustomerLeft", {}),
        ("MessageFailed", {"messageId": "m", "attempts": 8, "reason": "r", "ambiguousAttempts": 0}),
    ],
)
def test_views_fit_the_schema(event_type: str, detail: dict[str, object]) -> None:
    entry = TimelineEntry("evt-1", event_type, "conv-1", 1, 2, dict(detail))
    jsonschema.validate(event_view(entry, "case-1"), event_json_schema())


def test_the_schema_refuses_a_missing_required_field() -> None:
    entry = TimelineEntry("evt-1", "AgentJoined", "conv-1", 1, 2, {})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event_view(entry, "case-1"), event_json_schema())
