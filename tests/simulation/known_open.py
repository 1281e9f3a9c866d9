"""Defects the simulation finds in the code today whose fixes are being made elsewhere (each named after what it
breaks). A violation that matches one of them does not fail the bounded run; each has its own test that expects
the simulation to still find it (xfail, strict): when the fix lands, that test passes unexpectedly and the entry
must go. A violation that matches none of them always fails.

Remove an entry when its fix is on main; never add one to make a new failure pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.simulation.simulation import Result


@dataclass(frozen=True)
class KnownOpen:
    name: str
    what: str
    matches: Callable[[str, Result], bool]
    rare: bool = False  # not in every bounded run: its test cannot insist that the run still finds it


# Nothing open: every defect the simulation found is fixed on main. An entry names a defect whose fix is being
# made elsewhere, with a `matches` that recognises its violations.
KNOWN_OPEN: tuple[KnownOpen, ...] = ()


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
