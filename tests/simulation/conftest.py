"""The bounded simulation run is shared by the tests of this directory (it takes a while)."""

from __future__ import annotations

import os

import pytest

from tests.simulation.runner import RunSummary, run_many

BOUNDED_SEEDS = int(os.environ.get("SIMULATION_SEEDS", "300"))


@pytest.fixture(scope="session")
def bounded_run() -> RunSummary:
    """Seeds 0..BOUNDED_SEEDS-1, every violation kept (known open ones included)."""
    return run_many(range(BOUNDED_SEEDS), stop_at_first=False)
