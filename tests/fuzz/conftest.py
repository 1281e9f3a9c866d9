"""Fixtures for the webhook intake fuzzing: one FuzzTarget (moto active) per test."""
# ruff: noqa: PLC0415 - imports that must wait for moto, the environment or sys.path

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guarantees"))

from cb_fuzz_target import FuzzTarget


@pytest.fixture
def fuzz_target(monkeypatch: pytest.MonkeyPatch) -> Iterator[FuzzTarget]:
    from moto import mock_aws

    from casebridge import aws, services, settings

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
            services.set_services(None)
            settings.get_settings.cache_clear()
            aws.reset_clients()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long run (marked slow) runs only when asked for: `-m slow` or FUZZ_EXAMPLES set."""
    import os

    wanted = "slow" in (config.getoption("-m") or "") or os.environ.get("FUZZ_EXAMPLES")
    if wanted:
        return
    skip = pytest.mark.skip(reason="long fuzz run: make fuzz (FUZZ_EXAMPLES=100000 ... -m slow)")
    for item in items:
        if "slow" in item.keywords and str(item.path).startswith(str(Path(__file__).resolve().parent)):
            item.add_marker(skip)
