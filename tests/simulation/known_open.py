"""Defects the simulation finds in the code today whose fixes are being made elsewhere (each named after what it
breaks). A violation that matches one of them does not fail the bounded run; each has its own test that expects
the simulation to still find it (xfail, strict): when the fix lands, that test passes unexpectedly and the entry
must go. A violation that matches none of them always fails.

Remove an entry when its fix is on main; never add one to make a new failure pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.simulation.simulation import Result


@dataclass(frozen=True)
class KnownOpen:
    name: str
    what: str
    matches: Callable[[str, Result], bool]
    rare: bool = False  # not in every bounded run: its test cannot insist that the run still finds it


def _history_has(result: Result, *needles: str) -> bool:
    return any(all(n in line for n in needles) for line in result.history)


def _early_event(violation: str, result: Result) -> bool:
    """The event's receipt says it was kept as early (before its case knew the conversation)."""
    if result.sim is None:
        return False
    for (pk, _), item in result.sim.ddb.items.items():
        early = pk.startswith("WEBHOOK#") and item.get("outcome", {}).get("S") == "early"
        if early and re.search(rf"(?<![\w-]){re.escape(pk.rsplit('#', 1)[1])}(?![\w-])", violation):
            return True
    return False


def _flush_raced_the_recorder(violation: str, result: Result) -> bool:
    """A duplicate on the bus published once by the event's own delivery and once by another request's outbox
    flush (which read the entry as pending between the delivery's publish and its unmarking)."""
    match = re.match(r"\[4 bus\] \S+ (\S+) was published \d+ times after", violation)
    if match is None or result.sim is None:
        return False
    event_id = match.group(1)
    pids = {e["pid"] for e in result.sim.bus.published if e["detail"].get("eventId") == event_id}
    names = [result.sim.procs[pid].name for pid in pids]
    return len(pids) > 1 and any(not n.startswith(f"webhook {event_id}") for n in names)


def _adopted_twice(violation: str) -> bool:
    on_timeline_again = violation.startswith("[4 timeline]") and re.search(r"on the timeline [2-9] times", violation)
    read_twice = violation.startswith("[5 cursor]") and violation.endswith(" twice")
    return bool(on_timeline_again or read_twice)


KNOWN_OPEN: tuple[KnownOpen, ...] = (
    KnownOpen(
        "outbox flush races the recorder's publish",
        "a request that flushes the case's outbox (a read) publishes an event its delivery has just published and "
        "not yet unmarked: a second bus event with no fault",
        _flush_raced_the_recorder,
    ),
    KnownOpen(
        "a message's own timeline entries recorded twice",
        "the CustomerMessage and delivery-status entries of one message are recorded again (a new sequence each) "
        "when its delivery is retried after they were written",
        lambda v, r: _adopted_twice(v) and re.search(r"(customer|delivered)-[0-9a-f-]{36}", v) is not None,
        rare=True,
    ),
    KnownOpen(
        "outbox without a sweeper",
        "an outbox entry whose publish failed waits for the next request for its case, forever on a quiet case",
        lambda v, r: v.startswith("[7 outbox]") or "never reached the bus (still on the case's outbox)" in v,
    ),
    KnownOpen(
        "early event adopted twice",
        "an early event taken into its case twice (a retried or concurrent adoption) gets two timeline sequences",
        lambda v, r: _adopted_twice(v) and _early_event(v, r),
        rare=True,
    ),
    KnownOpen(
        "early events stranded",
        "events kept before the case knew its conversation are never adopted when the open fails after recording",
        lambda v, r: ("on the timeline 0 times" in v or "never reached the bus" in v) and _early_event(v, r),
    ),
)


def known(violation: str, result: Result) -> KnownOpen | None:
    if result.sim is None:  # judged while its world was still there
        name = result.known.get(violation)
        return next((k for k in KNOWN_OPEN if k.name == name), None)
    return next((k for k in KNOWN_OPEN if k.matches(violation, result)), None)


def explain(result: Result) -> dict[str, str]:
    """Each violation a known open defect explains, with that defect's name."""
    return {v: k.name for v in result.violations if (k := known(v, result)) is not None}


def unknown_violations(result: Result) -> list[str]:
    return [v for v in result.violations if known(v, result) is None]
