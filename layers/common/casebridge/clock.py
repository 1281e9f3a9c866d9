"""The connector's own clock (epoch ms). One place, so tests can see where local time enters."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
