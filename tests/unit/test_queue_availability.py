"""Queue availability: Real-time Metrics read loosely, figures shared across containers (one 8x8 call per queue
per refresh interval, whatever the traffic), the estimate, and the reasons open / closed / no-agents / unknown."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import responses

from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.escalation.availability import QueueFiguresCache, decide, estimate_wait_seconds
from casebridge.escalation.hours import ALWAYS_OPEN, parse_business_hours
from casebridge.escalation.metrics import (
    MetricsUnavailable,
    QueueFigures,
    RealtimeMetricsClient,
    parse_queue_metrics,
)
from casebridge.store import CaseStore

BASE = "https://api.8x8.test"
BUSY = QueueFigures(
    available=0, eligible=2, waiting=3, longest_wait_ms=95_000, average_wait_ms=60_000, average_handling_ms=240_000
)


class CountingSource:
    """8x8's metrics as a test double: counts the calls, answers after `delay` (so callers overlap)."""

    def __init__(self, figures: QueueFigures | None = BUSY, delay: float = 0.0) -> None:
        self.figures = figures
        self.delay = delay
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def queue_figures(self, queue_id: str) -> QueueFigures:
        with self._lock:
            self.calls.append(queue_id)
        time.sleep(self.delay)
        if self.figures is None:
            raise MetricsUnavailable("metrics answered 503")
        return self.figures


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(cases_table: str) -> CaseStore:
    return CaseStore(cases_table)


# ---- 8x8's answer, read loosely ------------------------------------------------------------------------------
def test_metrics_are_read_from_a_list_or_an_object_with_loose_values() -> None:
    metrics = [
        {"key": "availableIdle.rt", "value": "2"},  # E4: a numeric string
        {"key": "eligible.rt", "value": 3},
        {"key": "interactionsWaitInQueue.rt", "value": 1.0},
        {"key": "interactionsLongestWaitInQueue.rt", "value": None},
        {"key": "interactionsAvgWaitTime.int-30m", "value": [1, 2]},  # not a figure
    ]
    as_list = parse_queue_metrics([{"id": "103", "name": "Support", "metrics": metrics}], "103")
    as_object = parse_queue_metrics({"id": 103, "metrics": metrics}, "103")  # E5, and a numeric id
    assert as_list == as_object == QueueFigures(available=2, eligible=3, waiting=1)
    with pytest.raises(MetricsUnavailable):
        parse_queue_metrics([{"id": "other", "metrics": metrics}], "103")
    with pytest.raises(MetricsUnavailable):
        parse_queue_metrics({"message": "Bad request"}, "103")


@responses.activate
def test_the_metrics_client_sends_the_bearer_token_and_asks_for_the_queue_s_metrics() -> None:
    tokens = TokenProvider("t#analytics", lambda: AccessToken("tok-1", int(time.time() * 1000) + 1_800_000))
    url = f"{BASE}/eu/analytics/cc/v5/realtime-metrics/queues/q%201"
    responses.get(url, json=[{"id": "q 1", "metrics": [{"key": "availableIdle.rt", "value": 4}]}])
    client = RealtimeMetricsClient(BASE, "eu", tokens, lambda: "tenant-a")
    assert client.queue_figures("q 1") == QueueFigures(available=4)
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer tok-1"
    assert sent.headers["X-Tenant-Info"] == "tenant-a"
    assert "metrics=eligible.rt" in (sent.url or "") and "metrics=avgHandlingTime.int-30m" in (sent.url or "")


@responses.activate
def test_a_refused_token_is_dropped_and_errors_become_metrics_unavailable() -> None:
    issued = iter(["tok-1", "tok-2"])
    tokens = TokenProvider("t#analytics", lambda: AccessToken(next(issued), int(time.time() * 1000) + 1_800_000))
    url = f"{BASE}/analytics/cc/v5/realtime-metrics/queues/q1"
    responses.get(url, status=401)
    responses.get(url, json={"id": "q1", "metrics": []})
    client = RealtimeMetricsClient(BASE, "us", tokens)
    with pytest.raises(MetricsUnavailable, match="401"):
        client.queue_figures("q1")
    assert client.queue_figures("q1") == QueueFigures()
    assert responses.calls[1].request.headers["Authorization"] == "Bearer tok-2"
    assert "X-Tenant-Info" not in responses.calls[1].request.headers


# ---- the estimate -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("figures", "seconds"),
    [
        (QueueFigures(available=2, eligible=3, waiting=1, average_handling_ms=300_000), 0),  # someone is free
        (BUSY, 480),  # 3 waiting + this one, 2 agents each freeing up every 240 s: (3+1-0)*240/2
        (QueueFigures(available=1, eligible=4, waiting=5, average_handling_ms=100_000), 125),  # (5+1-1)*100/4
        (QueueFigures(waiting=2, average_wait_ms=61_500), 62),  # no handling time: the 30-minute average wait
        (QueueFigures(waiting=2), None),  # nothing to go by: null, never a guess
    ],
)
def test_the_estimate_follows_the_documented_formula(figures: QueueFigures, seconds: int | None) -> None:
    assert estimate_wait_seconds(figures) == seconds


# ---- shared across containers -------------------------------------------------------------------------------
def test_concurrent_callers_in_many_containers_make_one_metrics_call_per_refresh_interval(store: CaseStore) -> None:
    source = CountingSource(delay=0.2)  # the call is slow: every caller arrives while it runs
    clock = Clock()
    containers = [QueueFiguresCache(CaseStore(store.table), source, clock=clock) for _ in range(4)]
    answers: list[Any] = []

    def caller(index: int) -> None:
        answers.append(containers[index % 4].get("q1"))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.calls == ["q1"]
    assert len(answers) == 24 and all(a.figures == BUSY for a in answers)

    clock.now += 4.9  # still inside the interval: the table answers
    containers[1].get("q1")
    assert source.calls == ["q1"]
    clock.now += 0.1  # 5 s after the call: one caller refreshes
    containers[2].get("q1")
    containers[3].get("q1")
    assert source.calls == ["q1", "q1"]
    containers[0].get("q2")  # each queue has its own
    assert source.calls == ["q1", "q1", "q2"]


def test_a_failed_refresh_is_unknown_for_everyone_until_the_next_interval(store: CaseStore) -> None:
    source = CountingSource(figures=None)
    clock = Clock()
    cache = QueueFiguresCache(store, source, clock=clock)
    for _ in range(5):
        assert decide("q1", ALWAYS_OPEN, cache, 0).reason == "unknown"
    assert len(source.calls) == 1  # an outage is not hammered either
    source.figures = BUSY
    clock.now += 5
    assert decide("q1", ALWAYS_OPEN, cache, 0).reason == "open"


# ---- the reasons ------------------------------------------------------------------------------------------------
CLOSED_ALWAYS = parse_business_hours({"default": {"timeZone": "UTC", "weekly": {}}})


def test_the_reasons(store: CaseStore) -> None:
    def with_figures(figures: QueueFigures | None) -> Any:
        return decide("q1", ALWAYS_OPEN, QueueFiguresCache(CaseStore(store.table), CountingSource(figures)), 0)

    closed_source = CountingSource()
    closed = decide("q1", CLOSED_ALWAYS, QueueFiguresCache(store, closed_source), 1_000).view()
    assert (closed["open"], closed["reason"], closed["waiting"]) == (False, "closed", None)
    assert closed["hours"]["timeZone"] == "UTC" and closed_source.calls == []  # closed: no metrics call

    no_figures = decide("q1", ALWAYS_OPEN, None, 1_000).view()  # no analytics credentials
    assert no_figures == {
        "queueId": "q1",
        "open": True,
        "reason": "open",
        "agentsAvailable": None,
        "waiting": None,
        "longestWaitSeconds": None,
        "estimatedWaitSeconds": None,
        "asOf": 1_000,
        "hours": None,
    }
    store.client.delete_item(TableName=store.table, Key={"pk": {"S": "QUEUE#q1"}, "sk": {"S": "METRICS"}})
    busy = with_figures(BUSY).view()
    assert (busy["open"], busy["reason"], busy["agentsAvailable"], busy["waiting"]) == (True, "open", 0, 3)
    assert busy["longestWaitSeconds"] == 95 and busy["estimatedWaitSeconds"] == 480
    store.client.delete_item(TableName=store.table, Key={"pk": {"S": "QUEUE#q1"}, "sk": {"S": "METRICS"}})
    nobody = with_figures(QueueFigures(available=0, eligible=0, waiting=2)).view()
    assert (nobody["open"], nobody["reason"]) == (False, "no-agents")
    unreadable_hours = decide("q1", None, None, 5).view()
    assert (unreadable_hours["open"], unreadable_hours["reason"]) == (None, "unknown")
