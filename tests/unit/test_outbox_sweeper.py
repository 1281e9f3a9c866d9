"""The outbox sweeper (functions/outbox_sweeper, every minute): what a case's outbox holds longer than a short
delay reaches the bus even when nobody touches the case again; the age of the oldest pending entry is a metric."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from casebridge import outbox_sweeper
from casebridge.clock import now_ms
from scripts.local_stack.scheduler import build_scheduler
from scripts.local_stack.template import Template
from tests.support.lambdas import LambdaContext, load_function
from tests.support.paths import ROOT
from tests.unit.test_delivery_edges import fail_publishes, open_case, types


@pytest.fixture
def metric_values(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    from casebridge import observability  # noqa: PLC0415 - after the environment is set

    seen: dict[str, float] = {}
    monkeypatch.setattr(observability.metrics, "add_metric", lambda name, value=1, **_: seen.__setitem__(name, value))
    return seen


def sweep() -> dict[str, Any]:
    answer: dict[str, Any] = load_function("outbox_sweeper").lambda_handler({}, LambdaContext())
    return answer


def test_an_event_of_a_case_nobody_touches_again_is_published_by_the_sweeper_after_its_delay(
    functions: SimpleNamespace,
    services: Any,
    event_bus: Any,
    monkeypatch: pytest.MonkeyPatch,
    metric_values: dict[str, float],
) -> None:
    fail_publishes(services, False)
    assert open_case(functions).status >= 500  # ConversationOpened recorded, its publish refused
    [(case_id, since)] = services.store.pending_outboxes()
    assert sweep() == {"pending": 1, "swept": 0, "failures": 0, "oldestPendingMs": pytest.approx(0, abs=5_000)}
    assert types(event_bus) == [], "within the delay the request that recorded it may still publish it"

    later = since + services.settings.outbox_sweep_delay_seconds * 1000 + 1
    monkeypatch.setattr(outbox_sweeper, "now_ms", lambda: later)
    answer = sweep()
    assert (answer["pending"], answer["swept"], answer["failures"]) == (1, 1, 0)
    assert metric_values["OutboxOldestPendingSeconds"] == pytest.approx((later - since) / 1000)
    assert types(event_bus) == ["ConversationOpened"]
    case = services.store.get_case(case_id)
    assert case is not None and case.pending_publish == frozenset()
    assert services.store.pending_outboxes() == [], "off the sweeper's index once nothing is pending"
    assert sweep()["pending"] == 0 and metric_values["OutboxOldestPendingSeconds"] == 0


def test_a_sweep_whose_publish_fails_leaves_the_case_for_the_next_sweep(
    functions: SimpleNamespace, services: Any, event_bus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_publishes(services, False, False)
    assert open_case(functions).status >= 500
    monkeypatch.setattr(outbox_sweeper, "now_ms", lambda: now_ms() + 3_600_000)
    assert sweep()["failures"] == 1
    assert len(services.store.pending_outboxes()) == 1
    assert sweep()["failures"] == 0
    assert types(event_bus) == ["ConversationOpened"]


def test_the_local_stack_runs_the_sweepers_schedule_from_the_template() -> None:
    """`make local` and the e2e stack read template.yaml: the sweeper's Schedule event runs there too."""
    template = Template.load(ROOT / "template.yaml")
    invoked: list[str] = []

    def function(logical_id: str) -> Any:
        def invoke(event: dict[str, Any]) -> tuple[dict[str, Any], float]:
            invoked.append(event["resources"][0])
            return {}, 0.0

        return SimpleNamespace(logical_id=logical_id, invoke=invoke)

    scheduler = build_scheduler(template, {f: function(f) for f in template.functions()}, "us-east-1", "123456789012")
    [entry] = [e for e in scheduler.entries if e.function.logical_id == "OutboxSweeperFunction"]
    assert entry.period_s == 60
    scheduler.run_now("OutboxSweeperFunction")
    assert len(invoked) == 1 and "OutboxSweeperFunction" in invoked[0]
