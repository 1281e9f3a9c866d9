"""Many histories: a run over a range of seeds, the shrinking of a failing one, and the report.

A failing history shrinks by delta debugging over its choices: blocks of choices are replaced by 0 (the simplest
answer: no fault, fewer requests, the oldest process first) or dropped, and a candidate is kept when it still
breaks the same invariant with a history no longer than the best so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tests.simulation.known_open import explain
from tests.simulation.simulation import Result, Simulation, run_seed


@dataclass
class RunSummary:
    seeds: int = 0
    steps: int = 0
    faults: int = 0
    failures: list[Result] = field(default_factory=list)

    def line(self) -> str:
        unexplained = sum(1 for r in self.failures if set(r.violations) - set(r.known))
        verdict = "invariants held"
        if unexplained:
            verdict = f"{unexplained} seed(s) broke an invariant"
        elif self.failures:
            verdict = f"invariants broken by known open defects only ({len(self.failures)} seed(s))"
        return f"simulation: {self.seeds} seeds, {self.steps} steps, {self.faults} faults, {verdict}"


def run_many(
    seeds: Iterable[int],
    *,
    cases: int | None = None,
    check: Callable[[Simulation], list[str]] | None = None,
    stop_at_first: bool = True,
    stops: Callable[[Result], bool] = lambda result: result.failed,
) -> RunSummary:
    """`stops`: which failing history ends the run (with `stop_at_first`); every failing one is kept."""
    summary = RunSummary()
    for seed in seeds:
        result = run_seed(seed, cases=cases, check=check)
        summary.seeds += 1
        summary.steps += result.steps
        summary.faults += result.faults
        if result.failed:
            result.known = explain(result)
            result.sim = None  # a long run keeps the verdicts, not every world
            summary.failures.append(result)
            if stop_at_first and stops(result):
                break
    return summary


def invariant_of(violation: str) -> str:
    return violation.split("]", 1)[0] + "]"


def shrink(
    failing: Result,
    *,
    budget: int = 150,
    cases: int | None = None,
    check: Callable[[Simulation], list[str]] | None = None,
    relevant: Callable[[Result], list[str]] = lambda result: result.violations,
) -> Result:
    """The shortest history found that still breaks the first invariant `failing` broke (of its `relevant`
    violations: the bounded run ignores the defects known to be open)."""
    target = invariant_of(relevant(failing)[0])
    best = failing

    def attempt(choices: list[int]) -> bool:
        nonlocal best, budget
        if budget <= 0:
            return False
        budget -= 1
        candidate = run_seed(failing.seed, choices=choices, api=failing.api, cases=cases, check=check)
        breaks = any(invariant_of(v) == target for v in relevant(candidate))
        if breaks and len(candidate.history) <= len(best.history):
            best = candidate
            return True
        return False

    chunk = max(1, len(best.choices) // 2)
    while chunk >= 1 and budget > 0:
        index = 0
        while index < len(best.choices) and budget > 0:
            choices = list(best.choices)
            zeroed = choices[:index] + [0] * len(choices[index : index + chunk]) + choices[index + chunk :]
            if zeroed != choices and attempt(zeroed):
                continue
            dropped = choices[:index] + choices[index + chunk :]
            if not attempt(dropped):
                index += chunk
        chunk //= 2
    return best


def report(
    failing: Result, shrunk: Result | None, relevant: Callable[[Result], list[str]] = lambda result: result.violations
) -> str:
    lines = [f"seed {failing.seed} ({failing.api}) broke an invariant:"]
    lines += [f"  {v}" for v in relevant(failing)]
    if shrunk is not None:
        lines.append(f"shortest history found ({len(shrunk.history)} lines, from {len(failing.history)}):")
        lines += [f"  {v}" for v in relevant(shrunk)]
        lines += shrunk.history
    lines.append(f"replay it step by step: make simulate SEED={failing.seed}")
    return "\n".join(lines)
