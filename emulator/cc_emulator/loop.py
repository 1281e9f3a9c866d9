"""One daemon thread that waits on a condition (the delivery worker and the agent scheduler), and a log of
records that callers wait on (the delivery log and the test webhook receiver)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

R = TypeVar("R")


class ConditionLoop:
    def __init__(self, thread_name: str) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop_thread(2)

    def _stop_thread(self, join_timeout: float) -> None:
        # Wake the loop so it sees `_stopping`, then give it a bounded time to finish.
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=join_timeout)


def wait_on(cond: threading.Condition, probe: Callable[[], Any], timeout: float, failure: Callable[[], str]) -> Any:
    """Holding `cond`, waits until probe() is truthy and returns it; TimeoutError(failure()) after `timeout`.

    Re-checks at least every 50 ms, so a change made without a notify is still seen."""
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            value = probe()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(failure())
            cond.wait(timeout=min(remaining, 0.05))


class WaitableLog(Generic[R]):
    """Records appended under `_cond` (notifying it), that callers wait on until enough of them are there."""

    _cond: threading.Condition
    log_subject: ClassVar[str]  # what a timeout's message calls the log

    def _log(self) -> list[R]:
        """The live list, read under `_cond`."""
        raise NotImplementedError

    def wait_for(self, predicate: Callable[[list[R]], Any], timeout: float = 5.0) -> Any:
        """Block until predicate(a copy of the records) is truthy; return its value, or raise TimeoutError."""
        return wait_on(
            self._cond,
            lambda: predicate(list(self._log())),
            timeout,
            lambda: f"{self.log_subject} condition not met within {timeout}s; got {len(self._log())}",
        )

    def wait_for_count(self, select: Callable[[list[R]], list[R]], count: int, timeout: float = 5.0) -> list[R]:
        """Block until `select` picks at least `count` records; returns what it picked."""

        def enough(records: list[R]) -> tuple[list[R]] | None:
            found = select(records)
            return (found,) if len(found) >= count else None  # a tuple: truthy even when nothing is asked for

        picked: tuple[list[R]] = self.wait_for(enough, timeout)
        return picked[0]
