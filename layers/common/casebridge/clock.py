"""The connector's clock: wall time, a monotonic clock and sleeping, in one place, so that tests (the simulator)
can run the connector on virtual time and see where local time enters. Production uses the system's."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...  # epoch seconds
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM = SystemClock()
_clock: Clock = SYSTEM


def set_clock(clock: Clock | None) -> None:
    """Tests hand in their own clock (None: the system's again)."""
    global _clock  # noqa: PLW0603 - one clock per process
    _clock = SYSTEM if clock is None else clock


def now_ms() -> int:
    return int(_clock.time() * 1000)


def wall_time() -> float:
    return _clock.time()


def monotonic() -> float:
    return _clock.monotonic()


def sleep(seconds: float) -> None:
    _clock.sleep(seconds)
