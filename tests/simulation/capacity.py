"""The scale run: N concurrent cases in one simulated world (no faults), and the figures that decide whether the
stack carries them, each beside the AWS quota it meets (`make simulate CASES=10000`; docs/performance.md)."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable

from tests.simulation.simulation import Simulation, _environment
from tests.simulation.world import Faults, World

# AWS defaults (us-east-1), as the quotas pages state them.
PARTITION_WCU_PER_S = 1_000  # DynamoDB, per partition key
TABLE_ON_DEMAND_WCU_PER_S = 40_000  # DynamoDB on-demand, per table (adjustable)
FIFO_TPS_PER_GROUP = 300  # SQS FIFO high throughput with FifoThroughputLimit=perMessageGroupId, per API action
FIFO_IN_FLIGHT = 120_000  # SQS FIFO in-flight messages per queue
ACCOUNT_CONCURRENCY = 1_000  # Lambda concurrent executions per account and region (adjustable)
PUT_EVENTS_PER_S = 10_000  # EventBridge PutEvents requests per second, us-east-1 (2,400 in us-east-2; adjustable)
INTAKE_RESERVED = 20  # template.yaml IntakeReservedConcurrency default


def peak_per_second(times: Iterable[float]) -> int:
    """The most events in any one-second window."""
    ordered = sorted(times)
    best = 0
    for index, start in enumerate(ordered):
        best = max(best, bisect.bisect_left(ordered, start + 1.0, lo=index) - index)
    return best


def scale_run(cases: int, *, seed: int = 0, window_s: float = 60.0) -> str:
    _environment()
    started = time.monotonic()
    world = World(seed)
    world.faults = Faults()  # capacity, not correctness: nothing fails on purpose
    sim = Simulation(world, "chat-gateway-v1", cases)
    sim.esm.concurrency = ACCOUNT_CONCURRENCY
    with sim.patched():
        sim.channel.plan(sim.case_ids, window_s=window_s, polls=False)
        world.run()
    hot_pk, hot_rate = "", 0
    all_writes: list[float] = []
    for pk, times in sim.ddb.partition_writes.items():
        all_writes.extend(times)
        rate = peak_per_second(times)
        if rate > hot_rate:
            hot_pk, hot_rate = pk, rate
    runtime = sim.runtime
    total_peak = sum(runtime.peak_concurrency.values())
    backlog = max(sim.esm.peak_backlog.values(), default=0)
    sends_per_group = max(
        (peak_per_second(m.sent_at for m in sim.queue.sent if m.group == g) for g in sim.esm.peak_backlog), default=0
    )
    rows = [
        ("hottest partition key writes/s", f"{hot_rate} ({hot_pk.split('#')[0]}#…)", f"{PARTITION_WCU_PER_S} WCU/s"),
        ("table writes/s (peak)", str(peak_per_second(all_writes)), f"{TABLE_ON_DEMAND_WCU_PER_S} WCU/s on demand"),
        ("largest FIFO group backlog", str(backlog), f"{FIFO_IN_FLIGHT} in flight per queue"),
        ("sends/s into one message group", str(sends_per_group), f"{FIFO_TPS_PER_GROUP} TPS per group"),
        ("PutEvents calls/s (peak)", str(peak_per_second(sim.bus.call_times)), f"{PUT_EVENTS_PER_S}/s"),
        ("concurrent invocations, all functions", str(total_peak), f"{ACCOUNT_CONCURRENCY} per account"),
    ]
    for function in sorted(runtime.invocations):
        quota = f"{INTAKE_RESERVED} reserved" if function == "webhook_intake" else "account pool"
        throttled = runtime.throttled.get(function, 0)
        rows.append(
            (
                f"  {function}",
                f"{runtime.peak_concurrency.get(function, 0)} concurrent, {runtime.invocations[function]} invocations"
                + (f", {throttled} throttled" if throttled else ""),
                quota,
            )
        )
    if "webhook_intake" in runtime.throttled:
        rows.append(("  webhook_intake throttled (8x8 retries)", str(runtime.throttled["webhook_intake"]), "—"))
    width = max(len(r[0]) for r in rows) + 2
    lines = [
        f"scale run: {cases} cases starting within {window_s:.0f} s, {world.steps} steps, "
        f"{world.now:.0f} s of virtual time in {time.monotonic() - started:.0f} s"
    ]
    lines += [f"{name:<{width}}{value:<58}{quota}" for name, value, quota in rows]
    return "\n".join(lines)


__all__ = ["Simulation", "scale_run"]
