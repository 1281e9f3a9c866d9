"""One daemon thread that waits on a condition: the shape the delivery worker and the agent scheduler share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


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
