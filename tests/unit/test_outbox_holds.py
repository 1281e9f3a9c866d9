"""The outbox's holds: an entry belongs to the request that recorded it until that request publishes it, lets go
of it (its publish failed), or its hold runs out (it died). A flusher (a read, the sweeper, 8x8's retry) takes only
entries nobody holds, one flusher per entry, so a recorded event reaches the bus once."""

from __future__ import annotations

import re
from typing import Any

import pytest

from casebridge.clock import now_ms
from casebridge.outbox import flush_outbox
from casebridge.store import TimelineEntry
from casebridge.store import cases as store_cases
from casebridge.store.table import OUTBOX_HOLD_MS
from tests.support.connector import map_case
from tests.support.paths import ROOT


def record(services: Any, case_id: str, n: int) -> TimelineEntry:
    case = services.store.get_case(case_id)
    entry = TimelineEntry(f"e-{n}", "AgentMessage", "conv-held", n, n, {"agentId": "a", "text": f"#{n}"})
    recorded: TimelineEntry | None = services.store.record_case_event(case, entry, None, pending_publish=True)
    assert recorded is not None
    return recorded


def event_ids(event_bus: Any) -> list[str]:
    return [e["detail"]["eventId"] for e in event_bus.published()]


def test_a_flush_leaves_an_entry_its_recorder_still_holds(services: Any, event_bus: Any) -> None:
    map_case("held", "conv-held")
    recorded = record(services, "held", 1)
    flush_outbox(services, services.store.get_case("held"))  # a read racing the recorder's own publish
    assert event_ids(event_bus) == [], "the recorder is about to publish it: a second publish would double it"
    assert services.store.get_case("held").pending_publish == {recorded.sort_key}

    services.store.let_go_of_outbox_entries("held", {recorded.sort_key})  # its publish failed
    flush_outbox(services, services.store.get_case("held"))
    flush_outbox(services, services.store.get_case("held"))
    assert event_ids(event_bus) == ["e-1"]
    assert services.store.get_case("held").pending_publish == frozenset()


def test_of_two_flushers_one_takes_the_entry(services: Any, event_bus: Any) -> None:
    map_case("held", "conv-held")
    recorded = [record(services, "held", n) for n in range(3)]
    services.store.let_go_of_outbox_entries("held", {e.sort_key for e in recorded})
    case = services.store.get_case("held")  # both read the case before either publishes
    taken, gone = services.store.claim_outbox_entries("held", set(case.pending_publish))
    assert [e.event_id for e in taken] == ["e-0", "e-1", "e-2"] and gone == set()
    flush_outbox(services, case)  # the other flusher, with the same stale view
    assert event_ids(event_bus) == [], "taken by the first flusher: the second leaves them"


def test_an_entry_whose_recorder_died_is_published_once_its_hold_runs_out(
    services: Any, event_bus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    map_case("held", "conv-held")
    record(services, "held", 7)
    later = now_ms() + OUTBOX_HOLD_MS + 1
    monkeypatch.setattr(store_cases, "now_ms", lambda: later)
    flush_outbox(services, services.store.get_case("held"))
    assert event_ids(event_bus) == ["e-7"]


def test_an_outbox_larger_than_one_page_is_flushed_whole(services: Any, event_bus: Any) -> None:
    map_case("held", "conv-held")
    recorded = [record(services, "held", n) for n in range(130)]
    services.store.let_go_of_outbox_entries("held", {e.sort_key for e in recorded})
    flush_outbox(services, services.store.get_case("held"))
    assert len(event_ids(event_bus)) == 130
    assert services.store.get_case("held").pending_publish == frozenset()


def test_the_outbox_hold_outlasts_every_function_that_can_record_events() -> None:
    """A recorder still running when its hold ran out would publish an entry a flusher also took."""
    text = (ROOT / "template.yaml").read_text()
    timeouts = [int(t) for t in re.findall(r"^\s+Timeout: (\d+)\s*$", text, flags=re.MULTILINE)]
    assert timeouts, "template.yaml names no function timeout"
    skew_margin_ms = 10_000
    assert max(timeouts) * 1000 + skew_margin_ms <= OUTBOX_HOLD_MS, f"function timeouts {sorted(set(timeouts))}"
