"""The case timeline in commit order: each entry's sequence is assigned by the write that records it, and
`GET /cases/{id}/events?after=` (and any channel that resumes from a cursor) pages by it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.cases import timeline_after
from casebridge.store import CaseStore, StaleCase, TimelineEntry
from casebridge.store.codec import to_item
from tests.support.samples import Answer, invoke, sample_api_event, sample_webhook_event

CASE_ID = "case-1001"


NO_HISTORY = '{"customer": {"name": "Ada Lovelace"}}'


def open_case(functions: SimpleNamespace) -> None:
    # Without the sample's history (it would be on the timeline too): these tests are about 8x8's events.
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", case_id=CASE_ID, body=NO_HISTORY))
    assert answer.status == 201, answer.raw


def events_after(functions: SimpleNamespace, cursor: str | None) -> dict[str, Any]:
    query = {"limit": "100", **({"after": cursor} if cursor else {})}
    answer = invoke(functions.lifecycle, sample_api_event("case_events.json", case_id=CASE_ID, query=query))
    assert answer.status == 200, answer.raw
    body: dict[str, Any] = answer.body
    return body


def deliver(functions: SimpleNamespace, name: str, signer: Any) -> Answer:
    return invoke(functions.webhook, sample_webhook_event(name, signer))


def test_an_agent_message_committed_after_a_later_event_reaches_a_channel_already_past_it(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's message is received first but its write commits last: meanwhile a later event commits and the
    channel reads past it. Under a time-ordered key the message sorted before the channel's cursor, forever."""
    open_case(functions)
    record = services.store.record_case_event
    seen: dict[str, Any] = {}

    def slow_first_write(*args: Any, **kwargs: Any) -> Any:
        if not seen:
            seen["first"] = True
            seen["later"] = deliver(functions, "chat-api-v2/webhook_agent_joined.json", webhook_signer)
            seen["read"] = events_after(functions, None)
        return record(*args, **kwargs)

    monkeypatch.setattr(services.store, "record_case_event", slow_first_write)
    assert deliver(functions, "chat-api-v2/webhook_text.json", webhook_signer).status == 200
    assert seen["later"].status == 200
    assert [e["type"] for e in seen["read"]["events"]] == ["ConversationOpened", "AgentJoined"]
    rest = events_after(functions, seen["read"]["next"])
    assert [e["type"] for e in rest["events"]] == ["AgentMessage"], "the channel must still get the message"
    every = events_after(functions, None)["events"]
    assert [e["sequence"] for e in every] == [1, 2, 3]
    assert [e["type"] for e in every] == ["ConversationOpened", "AgentJoined", "AgentMessage"]


def test_bus_events_carry_the_sequence_and_cursor_a_channel_resumes_from(
    functions: SimpleNamespace, services: Any, webhook_signer: Any, event_bus: Any
) -> None:
    open_case(functions)
    for name in (
        "chat-api-v2/webhook_queued.json",
        "chat-api-v2/webhook_agent_joined.json",
        "chat-api-v2/webhook_text.json",
    ):
        assert deliver(functions, name, webhook_signer).status == 200
    published = sorted((p["detail"] for p in event_bus.published()), key=lambda d: d["sequence"])
    assert [d["type"] for d in published] == ["ConversationOpened", "Queued", "AgentJoined", "AgentMessage"]
    assert [d["sequence"] for d in published] == [1, 2, 3, 4]
    timeline = events_after(functions, None)["events"]
    assert [(e["eventId"], e["sequence"], e["cursor"]) for e in timeline] == [
        (d["eventId"], d["sequence"], d["cursor"]) for d in published
    ]
    # A push channel that delivered up to the Queued event resumes right after it.
    resumed = timeline_after(services, CASE_ID, published[1]["cursor"], 10)
    assert [e["type"] for e in resumed["events"]] == ["AgentJoined", "AgentMessage"]
    assert resumed["next"] == published[3]["cursor"]
    assert timeline_after(services, CASE_ID, resumed["next"], 10)["events"] == []


def entry(event_id: str, received_at: int) -> TimelineEntry:
    return TimelineEntry(event_id, "AgentMessage", "conv-1", received_at, received_at, {"agentId": "a", "text": "t"})


def test_a_write_from_a_stale_read_of_the_case_cannot_take_a_sequence_twice(cases_table: str) -> None:
    store = CaseStore(cases_table)
    assert store.claim_opening("case-1", 30_000)
    store.record_conversation("case-1", "conv-1", "channel-1")
    stale = store.get_case("case-1")
    assert stale is not None
    first = store.record_case_event(stale, entry("e1", 2_000), None)
    assert first is not None and first.sequence == 1
    with pytest.raises(StaleCase):
        store.record_case_event(stale, entry("e2", 1_000), None)
    fresh = store.get_case("case-1")
    assert fresh is not None and fresh.timeline_seq == 1
    second = store.record_case_event(fresh, entry("e2", 1_000), None)
    assert second is not None and second.sequence == 2
    entries, _ = store.list_timeline("case-1", None, 10)
    assert [(e.event_id, e.sequence) for e in entries] == [("e1", 1), ("e2", 2)]


def test_a_cursor_from_before_sequences_pages_on_through_older_entries_then_sequenced_ones(
    cases_table: str,
) -> None:
    """Entries written before the timeline had sequences keep their time-ordered key; a channel's old cursor
    still pages: the remaining older entries first, then every sequenced one."""
    store = CaseStore(cases_table)
    assert store.claim_opening("case-1", 30_000)
    store.record_conversation("case-1", "conv-1", "channel-1")
    table = store.client
    for n in (1, 2):
        old = entry(f"old-{n}", 1_000 + n)
        table.put_item(
            TableName=cases_table,
            Item={"pk": {"S": "CASE#case-1"}, "sk": {"S": old.sort_key}, **_attributes(old)},
        )
    case = store.get_case("case-1")
    assert case is not None
    store.record_case_event(case, entry("new-1", 500), None)
    first, cursor = store.list_timeline("case-1", None, 1)
    assert [e.event_id for e in first] == ["old-1"]
    rest, _ = store.list_timeline("case-1", cursor, 10)
    assert [e.event_id for e in rest] == ["old-2", "new-1"]


def _attributes(e: TimelineEntry) -> dict[str, Any]:
    return to_item(e.attributes(2_000_000_000))
