"""The local stack's stand-in for EventBridge schedules: the template's rate, a shorter period, or on demand."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from scripts.local_stack.scheduler import ScheduledFunction, Scheduler, rate_seconds
from scripts.local_stack.template import TemplateError


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(30 seconds)", 30), ("rate(2 hours)", 7200)],
)
def test_rates(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


def test_a_cron_expression_is_refused_by_name() -> None:
    with pytest.raises(TemplateError, match="rate"):
        rate_seconds("cron(0 12 * * ? *)")


class Function:
    def __init__(self, fail: bool = False, logical_id: str = "TimersFunction") -> None:
        self.logical_id = logical_id
        self.events: list[dict[str, Any]] = []
        self.fail = fail
        self.ran = threading.Event()

    def invoke(self, event: dict[str, Any]) -> tuple[Any, None]:
        self.events.append(event)
        self.ran.set()
        if self.fail:
            raise RuntimeError("sweep broke")
        return {"cases": 0}, None


def entry(function: Function, period: float) -> ScheduledFunction:
    return ScheduledFunction(function, "Timers-Sweep", period, "us-east-1", "123456789012")  # type: ignore[arg-type]


def test_run_now_invokes_with_a_scheduled_event_and_keeps_errors() -> None:
    good, bad = Function(), Function(fail=True)
    scheduler = Scheduler([entry(good, 60), entry(bad, 60)])
    assert scheduler.run_now() == [{"cases": 0}, None]
    event = good.events[0]
    assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event")
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/Timers-Sweep"]
    assert scheduler.entries[1].errors == ["RuntimeError: sweep broke"]


def test_run_now_for_one_function_runs_only_its_schedules() -> None:
    sweeper, timers = Function(logical_id="OutboxSweeperFunction"), Function()
    scheduler = Scheduler([entry(sweeper, 60), entry(timers, 60)])
    assert scheduler.run_now("OutboxSweeperFunction") == [{"cases": 0}]
    assert (len(sweeper.events), len(timers.events)) == (1, 0)


def test_a_started_scheduler_runs_at_its_period_and_stops() -> None:
    function = Function()
    scheduler = Scheduler([entry(function, 0.05)]).start()
    try:
        assert function.ran.wait(5)
    finally:
        scheduler.stop()
    runs = len(function.events)
    assert runs >= 1
    assert len(function.events) == runs  # stopped: no more runs
