"""The template's `Type: Schedule` events, as EventBridge runs them: each function with one is invoked with a
scheduled event at its rate (`rate(N minute|minutes|second|seconds|hour|hours)`), one invocation at a time.

Locally the period can be shortened (StackOptions.schedule_seconds) so a demo or a test sees a minute's timers
within seconds; `run_now` invokes every scheduled function once, synchronously (what a test waits on).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scripts.local_stack.functions import LocalFunction
from scripts.local_stack.template import Template, TemplateError

_RATE = re.compile(r"rate\((\d+) (second|seconds|minute|minutes|hour|hours)\)")
_UNIT_S = {"second": 1, "seconds": 1, "minute": 60, "minutes": 60, "hour": 3600, "hours": 3600}


def rate_seconds(expression: str) -> float:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        raise TemplateError(f"schedule {expression!r}: the local stack runs rate(...) expressions only")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def scheduled_event(region: str, account_id: str, rule: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{rule}"],
        "detail": {},
    }


@dataclass
class ScheduledFunction:
    function: LocalFunction
    rule: str
    period_s: float
    region: str
    account_id: str
    errors: list[str] = field(default_factory=list)
    runs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> Any:
        with self._lock:  # one at a time, like a schedule whose function has ReservedConcurrentExecutions 1
            self.runs += 1
            try:
                result, _ = self.function.invoke(scheduled_event(self.region, self.account_id, self.rule))
                return result
            except Exception as error:  # kept for the stack's error report; the schedule goes on
                self.errors.append(f"{type(error).__name__}: {error}")
                return None


class Scheduler:
    def __init__(self, entries: list[ScheduledFunction]) -> None:
        self.entries = entries
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Scheduler:
        for entry in self.entries:
            thread = threading.Thread(target=self._loop, args=(entry,), name=f"schedule-{entry.rule}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, entry: ScheduledFunction) -> None:
        next_run = time.monotonic() + entry.period_s
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            entry.run()
            next_run += entry.period_s

    def run_now(self, function_id: str | None = None) -> list[Any]:
        """Each scheduled function once (or only `function_id`'s schedules), in the template's order."""
        return [entry.run() for entry in self.entries if function_id in (None, entry.function.logical_id)]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()


def build_scheduler(
    template: Template,
    functions: dict[str, LocalFunction],
    region: str,
    account_id: str,
    period_s: float | None = None,
) -> Scheduler:
    entries = []
    for function_id, event_id, props in template.function_events("Schedule"):
        if str(template.resolve(props.get("Enabled", True))).lower() == "false":
            continue
        period = period_s if period_s is not None else rate_seconds(str(template.resolve(props["Schedule"])))
        entries.append(
            ScheduledFunction(functions[function_id], f"{function_id}-{event_id}", period, region, account_id)
        )
    return Scheduler(entries)
