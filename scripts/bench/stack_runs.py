"""What the figures measured through the local stack share (e2e.py, push.py): the emulator they run against,
their cases run at once, and how a latency figure is read."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cc_emulator import EmulatorConfig, ScriptConfig


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile (q=0.99: p99) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def emulator_config(agents: int, script: ScriptConfig) -> EmulatorConfig:
    """One Support queue and `agents` agents playing `script`. Routing takes 50 ms (the emulated wait before an
    agent joins, once per case); a scripted reply is written at once, so a round trip is the stack's own time."""
    from cc_emulator import AgentConfig, EmulatorConfig, QueueConfig, TimingConfig  # noqa: PLC0415

    return EmulatorConfig(
        port=0,
        tenant_id="bench-tenant",
        customer_id="bench-customer",
        api_key="bench-key",
        api_secret=uuid.uuid4().hex,
        queues=[QueueConfig("support", "Support")],
        agents=[AgentConfig(f"agent{i}", f"Agent {i}", ["support"], script=script) for i in range(agents)],
        timings=TimingConfig(accept_delay=0.05, reply_delay=0.0, delivery_timeout=5.0, retry_base_delay=0.1),
    )


def at_once(name: str, cases: int, one_case: Callable[[str], None], failures: list[str]) -> None:
    """`one_case` for `cases` new case ids (`bench-<name>-<n>-...`), each on its own thread, all at once; returns
    when all ended. A case that fails is added to `failures`: reported with the figure, never hidden."""
    lock = threading.Lock()

    def run(n: int) -> None:
        case_id = f"bench-{name}-{n}-{uuid.uuid4().hex[:6]}"
        try:
            one_case(case_id)
        except Exception as error:
            with lock:
                failures.append(f"{case_id}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(cases)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
