"""Fixtures for the webhook intake fuzzing: one FuzzTarget (moto active) per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from tests.fuzz.cb_fuzz_target import FuzzTarget
from tests.support.connector import reset_casebridge


@pytest.fixture
def fuzz_target(monkeypatch: pytest.MonkeyPatch) -> Iterator[FuzzTarget]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "CASES_TABLE_NAME",
        "EVENT_BUS_NAME",
        "EIGHTXEIGHT_TENANT_ID",
        "EIGHTXEIGHT_BASE_URL",
        "POWERTOOLS_TRACE_DISABLED",
        "POWERTOOLS_METRICS_DISABLED",
        "POWERTOOLS_LOG_LEVEL",
    ):
        monkeypatch.setenv(name, "x")  # restored by monkeypatch after the test; FuzzTarget sets real values
    with mock_aws():
        target = FuzzTarget()
        try:
            yield target
        finally:
            reset_casebridge()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long run (marked slow) runs only when asked for: `-m slow` or FUZZ_EXAMPLES set."""
    wanted = "slow" in (config.getoption("-m") or "") or os.environ.get("FUZZ_EXAMPLES")
    if wanted:
        return
    skip = pytest.mark.skip(reason="long fuzz run: make fuzz (FUZZ_EXAMPLES=100000 ... -m slow)")
    for item in items:
        if "slow" in item.keywords and str(item.path).startswith(str(Path(__file__).resolve().parent)):
            item.add_marker(skip)
