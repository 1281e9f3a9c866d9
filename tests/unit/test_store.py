"""casebridge.store: the DynamoDB access layer, against moto's DynamoDB (table built from template.yaml)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from casebridge.business_api.views import case_view
from casebridge.cases import adopt_early_events
from casebridge.errors import InvalidRequest
from casebridge.state import CaseState, LiveState
from casebridge.store import (
    CaseStore,
    MessageRecord,
    MessageStatus,
    OpeningAttempt,
    StaleCase,
    TimelineEntry,
    decode_cursor,
    encode_cursor,
)
from casebridge.store.records import WebhookReceipt
from tests.support.aws import aws_client

TENANT = "acme-tenant"


@pytest.fixture
def store(cases_table: str) -> CaseStore:
    return CaseStore(cases_table)


def entry(event_id: str, received_at: int, conversation_id: str = "conv-1", **kw: object) -> TimelineEntry:
    return TimelineEntry(
        event_id=event_id,
        type=str(kw.get("type", "Queued")),
        conversation_id=conversation_id,
        occurred_at=int(kw.get("occurred_at", received_at)),  # type: ignore[call-overload]
        received_at=received_at,
        detail=dict(kw.get("detail", {"queueId": "101"})),  # type: ignore[call-overload]
        source_event_type=str(kw.get("source", "QUEUED")),
    )


def receipt(event_id: str, digest: str = "0" * 64) -> WebhookReceipt:
    return WebhookReceipt(TENANT, event_id, digest)


def opened_case(store: CaseStore, case_id: str = "case-1", conversation_id: str = "conv-1"):  # type: ignore[no-untyped-def]
    assert store.claim_opening(case_id, 30_000)
    store.record_conversation(case_id, conversation_id, "channel-1")
    case = store.get_case(case_id)
    assert case is not None
    return case


def all_items(table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws_client("dynamodb").scan(TableName=table)["Items"]
    return items


# ---- opening a case ------------------------------------------------------------------------------
def test_claim_opening_has_a_single_winner(store: CaseStore) -> None:
    first = store.claim_opening("case-1", 30_000)
    assert first.taken is True and first.found is None, "the claim found no case"
    refused = [store.claim_opening("case-1", 30_000) for _ in range(5)]
    assert [c.taken for c in refused] == [False] * 5
    assert all(c.found is not None and c.found.opening_until for c in refused), "they see the holder's lease"
    case = store.get_case("case-1")
    assert case is not None
    assert (case.case_id, case.conversation_id, case.live.state, case.version) == ("case-1", None, CaseState.OPEN, 0)
    assert case.opening_until > case.created_at > 0


def test_claim_can_be_taken_again_after_its_lease_or_release(store: CaseStore) -> None:
    assert store.claim_opening("case-1", 0)
    time.sleep(0.003)
    assert store.claim_opening("case-1", 30_000), "an expired lease can be taken over"
    store.release_claim("case-1")
    assert store.claim_opening("case-1", 30_000), "a released claim can be taken at once"


def test_no_claim_once_the_conversation_is_recorded(store: CaseStore) -> None:
    opened_case(store)
    time.sleep(0.002)
    refused = store.claim_opening("case-1", 0)
    assert refused.taken is False
    assert refused.found is not None and refused.found.conversation_id == "conv-1", "it sees the conversation"


def test_the_claim_answers_with_the_case_as_it_found_it_and_keeps_unsure_attempts(store: CaseStore) -> None:
    """Decisions are taken on the claim write's old image: an ambiguous release between an opener's read and its
    claim is seen. A clean failure forgets its attempt; an ambiguous one keeps it for the next opener."""
    on_a = OpeningAttempt("channel-a", "h1", "c1", ("queue", "q1"))
    on_b = OpeningAttempt("channel-b", "h2", "c2")
    assert store.claim_opening("case-1", 30_000, on_a)
    store.release_claim("case-1", ambiguous=True, attempt=on_a)
    second = store.claim_opening("case-1", 30_000, on_b)
    assert second.taken and second.found is not None
    assert (second.found.opening_ambiguous, second.found.opening_attempts) == (True, frozenset({on_a}))
    store.release_claim("case-1", ambiguous=False, attempt=on_b)
    third = store.claim_opening("case-1", 30_000, on_b)
    assert third.found is not None and third.found.opening_attempts == frozenset({on_a}), "b's clean failure forgotten"
    store.record_conversation("case-1", "conv-1", "channel-a", open_request_hashes={"h1"}, customer_hash="c1")
    case = store.get_case("case-1")
    assert case is not None
    assert (case.opening_attempts, case.open_request_hashes, case.customer_hash) == (
        frozenset(),
        frozenset({"h1"}),
        "c1",
    )


def test_record_conversation_binds_both_ways(store: CaseStore, cases_table: str) -> None:
    case = opened_case(store, "case-1", "conv-1")
    assert (case.conversation_id, case.channel_id, case.opening_until) == ("conv-1", "channel-1", 0)
    mapping = aws_client("dynamodb").get_item(
        TableName=cases_table, Key={"pk": {"S": "CONVERSATION#conv-1"}, "sk": {"S": "CONVERSATION"}}
    )["Item"]
    assert mapping["caseId"] == {"S": "case-1"}
    assert store.lookup_for_webhook("conv-1", TENANT, "evt-1")[0] == "case-1"


def test_record_conversation_is_all_or_nothing(store: CaseStore, cases_table: str) -> None:
    opened_case(store, "case-1", "conv-1")
    assert store.claim_opening("case-2", 30_000)
    with pytest.raises(StaleCase):
        store.record_conversation("case-2", "conv-1", "channel-1")  # conversation already mapped to case-1
    case2 = store.get_case("case-2")
    assert case2 is not None and case2.conversation_id is None, "the case half must not be written alone"
    with pytest.raises(StaleCase):
        store.record_conversation("case-1", "conv-9", "channel-1")  # case-1 already has one
    assert store.get_case("case-1").conversation_id == "conv-1"  # type: ignore[union-attr]
    assert store.lookup_for_webhook("conv-9", TENANT, "e")[0] is None


# ---- case events ---------------------------------------------------------------------------------
def test_record_case_event_writes_entry_state_and_receipt(store: CaseStore) -> None:
    case = opened_case(store)
    live = LiveState(state=CaseState.QUEUED, state_at=100, queue_id="101", queue_name="Support")
    recorded = store.record_case_event(case, entry("evt-1", 1_000), live, receipt=receipt("evt-1"))
    assert recorded is not None and recorded.sequence == 1
    after = store.get_case("case-1")
    assert after is not None
    assert (after.live.state, after.live.queue_id, after.version) == (CaseState.QUEUED, "101", 1)
    entries, _ = store.list_timeline("case-1", None, 10)
    assert [e.event_id for e in entries] == ["evt-1"]
    assert store.lookup_for_webhook("conv-1", TENANT, "evt-1")[2] is not None


def test_duplicate_receipt_returns_none_and_writes_nothing(store: CaseStore) -> None:
    case = opened_case(store)
    live = LiveState(state=CaseState.QUEUED, state_at=100)
    assert store.record_case_event(case, entry("evt-1", 1_000), live, receipt=receipt("evt-1")) is not None
    fresh = store.get_case("case-1")
    assert fresh is not None
    later = LiveState(state=CaseState.WITH_AGENT, state_at=200, agent_id="a")
    assert store.record_case_event(fresh, entry("evt-1", 2_000), later, receipt=receipt("evt-1")) is None
    entries, _ = store.list_timeline("case-1", None, 10)
    assert len(entries) == 1
    assert store.get_case("case-1").live.state is CaseState.QUEUED  # type: ignore[union-attr]


def test_version_conflict_raises_stale_case(store: CaseStore) -> None:
    case = opened_case(store)
    assert store.record_case_event(case, entry("e1", 1), LiveState(state=CaseState.QUEUED, state_at=1))
    with pytest.raises(StaleCase):  # `case` is the version read before the write above
        store.record_case_event(case, entry("e2", 2), LiveState(state=CaseState.WITH_AGENT, state_at=2), receipt("e2"))
    entries, _ = store.list_timeline("case-1", None, 10)
    assert [e.event_id for e in entries] == ["e1"]
    assert store.lookup_for_webhook("conv-1", TENANT, "e2")[2] is None, "no receipt for a failed transaction"


def test_event_without_state_change_takes_the_next_sequence_and_keeps_the_state(store: CaseStore) -> None:
    case = opened_case(store)
    assert store.record_case_event(case, entry("text-1", 5, type="AgentMessage"), None, receipt=receipt("text-1"))
    after = store.get_case("case-1")
    assert after is not None
    assert (after.live, after.timeline_seq, after.version) == (case.live, 1, 1)


def test_state_update_removes_cleared_fields(store: CaseStore) -> None:
    case = opened_case(store)
    store.record_case_event(case, entry("e1", 1), LiveState(CaseState.WITH_AGENT, 1, "101", "Support", "a", "Ann"))
    with_agent = store.get_case("case-1")
    assert with_agent is not None and with_agent.live.agent_id == "a"
    store.record_case_event(with_agent, entry("e2", 2), LiveState(CaseState.AGENT_LEFT, 2, "101", "Support"))
    left = store.get_case("case-1")
    assert left is not None
    assert (left.live.agent_id, left.live.agent_name, left.live.queue_id) == (None, None, "101")
    assert case_view(left)["agent"] is None


# ---- timeline paging -----------------------------------------------------------------------------
def test_timeline_pages_with_a_cursor(store: CaseStore) -> None:
    case = opened_case(store)
    for n in range(5):
        store.record_case_event(store.get_case("case-1") or case, entry(f"e{n}", 1_000 + n), None)
    first, cursor = store.list_timeline("case-1", None, 2)
    second, cursor2 = store.list_timeline("case-1", cursor, 2)
    third, cursor3 = store.list_timeline("case-1", cursor2, 2)
    assert [e.event_id for e in first + second + third] == ["e0", "e1", "e2", "e3", "e4"]
    empty, cursor4 = store.list_timeline("case-1", cursor3, 2)
    assert empty == [] and cursor4 == cursor3


def test_timeline_never_returns_the_case_or_messages(store: CaseStore) -> None:
    case = opened_case(store)
    store.record_message("case-1", MessageRecord("m1", MessageStatus.SENT, 1), "conv-1")
    store.record_case_event(case, entry("e1", 1), None)
    entries, cursor = store.list_timeline("case-1", None, 10)
    assert [e.event_id for e in entries] == ["e1"]
    after, _ = store.list_timeline("case-1", cursor, 10)
    assert after == [], "paging past the last event must not reach MESSAGE# items"


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "not-base64!",
        encode_cursor("CASE"),
        encode_cursor("MESSAGE#x"),
        "\u00e9",
        encode_cursor("EVENT#" + "9" * 400),
    ],
)
def test_bad_cursor_is_an_invalid_request(store: CaseStore, cursor: str) -> None:
    opened_case(store)
    with pytest.raises(InvalidRequest):
        store.list_timeline("case-1", cursor, 10)


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor("EVENT#0000000001000#e1")) == "EVENT#0000000001000#e1"


# ---- early events -------------------------------------------------------------------------------------
def test_orphan_event_is_kept_and_listed(store: CaseStore) -> None:
    assert store.record_early_event(receipt("evt-1"), entry("evt-1", 1_000, "conv-early")) is True
    orphans = store.early_events("conv-early")
    assert [(o.event_id, o.source_event_type, o.detail) for o in orphans] == [("evt-1", "QUEUED", {"queueId": "101"})]
    assert store.lookup_for_webhook("conv-early", TENANT, "evt-1")[2] is not None


def test_duplicate_orphan_returns_false(store: CaseStore) -> None:
    assert store.record_early_event(receipt("evt-1"), entry("evt-1", 1_000, "conv-early"))
    assert store.record_early_event(receipt("evt-1"), entry("evt-1", 2_000, "conv-early")) is False
    assert len(store.early_events("conv-early")) == 1


def test_orphan_after_the_mapping_exists_is_stale(store: CaseStore) -> None:
    opened_case(store, "case-1", "conv-1")
    with pytest.raises(StaleCase):
        store.record_early_event(receipt("evt-1"), entry("evt-1", 1_000, "conv-1"))
    assert store.early_events("conv-1") == []


def test_orphan_adoption_moves_the_event_to_the_case(services: object) -> None:
    store: CaseStore = services.store  # type: ignore[attr-defined]
    queued = entry("evt-q", 1_000, "conv-1", occurred_at=500, detail={"queueId": "101", "queueName": "Support"})
    store.record_early_event(receipt("evt-q"), queued)
    opened_case(store, "case-1", "conv-1")
    adopt_early_events(services, "case-1", "conv-1")  # type: ignore[arg-type]
    case = store.get_case("case-1")
    assert case is not None
    assert (case.live.state, case.live.queue_name, case.live.state_at) == (CaseState.QUEUED, "Support", 500)
    assert [e.event_id for e in store.list_timeline("case-1", None, 10)[0]] == ["evt-q"]
    assert store.early_events("conv-1") == []


def big_early_events(store: CaseStore, count: int) -> list[str]:
    """`count` early agent messages of ~300 KB each under conv-1: more than one 1 MB page of a Query."""
    ids = [f"evt-{n}" for n in range(count)]
    for n, event_id in enumerate(ids):
        detail = {"agentId": "agent-1", "text": str(n) * 300_000}
        early = entry(event_id, 1_000 + n, "conv-1", type="AgentMessage", source="TEXT", detail=detail)
        assert store.record_early_event(receipt(event_id), early)
    return ids


def test_early_events_over_one_page_of_a_query_are_all_listed(store: CaseStore) -> None:
    """A Query answers at most 1 MB: early events past it were left out (never taken into their case)."""
    ids = big_early_events(store, 5)
    assert [e.event_id for e in store.early_events("conv-1")] == ids


def test_early_events_over_one_page_of_a_query_are_all_adopted(services: object) -> None:
    store: CaseStore = services.store  # type: ignore[attr-defined]
    ids = big_early_events(store, 5)
    opened_case(store, "case-1", "conv-1")
    adopted = adopt_early_events(services, "case-1", "conv-1", publish=False)  # type: ignore[arg-type]
    assert [e.event_id for e in adopted] == ids
    assert store.early_events("conv-1") == []
    case = store.get_case("case-1")
    assert case is not None and case.timeline_seq == len(ids)


# ---- lookups -------------------------------------------------------------------------------------
def test_lookup_for_webhook_unknown_conversation(store: CaseStore) -> None:
    assert tuple(store.lookup_for_webhook("conv-x", TENANT, "evt-1")) == (None, None, None, None)


def test_lookup_for_webhook_uses_the_container_cache_after_the_first_hit(store: CaseStore) -> None:
    opened_case(store, "case-1", "conv-1")
    case_id, case, seen, _ = store.lookup_for_webhook("conv-1", TENANT, "evt-1")
    assert (case_id, seen) == ("case-1", None) and case is not None and case.case_id == "case-1"
    case_id, case, seen, _ = store.lookup_for_webhook("conv-1", TENANT, "evt-1")  # cached mapping path
    assert (case_id, seen) == ("case-1", None) and case is not None and case.conversation_id == "conv-1"
    store.record_case_event(case, entry("evt-1", 1), None, receipt=receipt("evt-1"))
    assert store.lookup_for_webhook("conv-1", TENANT, "evt-1")[2] is not None


def test_receipts_expire_and_timeline_items_carry_a_ttl(store: CaseStore, cases_table: str) -> None:
    case = opened_case(store)
    store.record_case_event(case, entry("evt-1", 1), None, receipt=receipt("evt-1"))
    now = time.time()
    for item in all_items(cases_table):
        sk = item["sk"]["S"]
        if sk.startswith("EVENT#") or sk == "RECEIPT":
            assert int(item["expiresAt"]["N"]) > now + 86_400, sk
        if sk == "CASE":
            assert "expiresAt" not in item, "the case itself never expires"
