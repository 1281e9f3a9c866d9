"""Business hours on the local stack: the SSM document the template names, checked at start as a deploy checks
it, and an open that asks to be refused outside hours (409, nothing created in 8x8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from casebridge.escalation.hours import ScheduleInvalid
from scripts.local_stack.stack import LocalStack, StackOptions
from tests.e2e.e2e_support import SUPPORT, Client, e2e_emulator_config

CLOSED = {"queues": {SUPPORT: {"timeZone": "Europe/Paris", "weekly": {}}}}  # no hours at all: always closed


@pytest.fixture(scope="module")
def closed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        stack_name="casebridge-e2e-hours",
        emulator_config=e2e_emulator_config(),
        log_path=tmp_path_factory.mktemp("e2e-hours") / "functions.log",
        schedule_seconds=0,
        business_hours=CLOSED,
        chat_page=False,
    )
    with LocalStack(options).start() as running:
        yield running


def test_outside_hours_is_closed_and_a_refusing_open_creates_nothing(closed_stack: LocalStack) -> None:
    client = Client(closed_stack, closed_stack.session())
    availability = client.call("GET", f"/queues/{SUPPORT}/availability").json()
    assert (availability["open"], availability["reason"]) == (False, "closed")
    assert availability["hours"]["timeZone"] == "Europe/Paris"
    refused = client.open("e2e-closed-1", {"whenUnavailable": "refuse"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["availability"]["reason"] == "closed"
    assert client.call("GET", "/cases/e2e-closed-1").status_code == 404
    queued = client.open("e2e-closed-2")  # "queue", the default: opens as always
    assert queued.status_code == 201, queued.text


def test_a_bad_document_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    bad = {"queues": {SUPPORT: {"timeZone": "Europe/Paris", "weekly": {"mon": [["18:00", "09:00"]]}}}}
    options = StackOptions(
        stack_name="casebridge-e2e-bad-hours",
        emulator_config=e2e_emulator_config(),
        log_path=tmp_path / "functions.log",
        schedule_seconds=0,
        business_hours=bad,
        chat_page=False,
    )
    with pytest.raises(ScheduleInvalid, match=r"queues.support.weekly.mon.0 ends \(09:00\) before it starts"):
        LocalStack(options).start()
