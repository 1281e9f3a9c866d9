"""One daemon thread that waits on a condition (the delivery worker), the agent scheduler built on it, and a log of
records that callers wait on (the delivery log and the test webhook receiver)."""

from __future__ import annotations

import heapq
import itertools
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


class Scheduler(ConditionLoop):
    """Runs delayed agent actions on one thread; reset() drops everything pending.

    Background calls (idle wrap-up timers) do not make the emulator busy: `wait_quiet` ignores them.
    """

    def __init__(self) -> None:
        super().__init__("cc-emulator-scheduler")
        self._heap: list[tuple[float, int, bool, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._running = 0

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()

    def call_later(self, delay: float, fn: Callable[[], None], background: bool = False) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), background, fn))
            self._cond.notify_all()

    def busy(self) -> bool:
        with self._cond:
            return any(not background for _, _, background, _ in self._heap) or self._running > 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout=timeout)
                if self._stopping:
                    return
                _, _, _, fn = heapq.heappop(self._heap)
                self._running += 1
            try:
                fn()
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
