"""End-to-end fixtures: one local stack (template.yaml on moto + the 8x8 emulator) per test module (torn down with
the module, so its environment never leaks into the tests that follow),
reached over HTTP only, like a business and like 8x8 would reach the deployed connector."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from scripts.local_stack.stack import LocalStack, StackOptions
from tests.e2e.e2e_support import Client, e2e_emulator_config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log = tmp_path_factory.mktemp("e2e") / "functions.log"
    # Scheduled functions (the escalation's timers) only when a test runs them: their events stay predictable.
    options = StackOptions(
        stack_name="casebridge-e2e", emulator_config=e2e_emulator_config(), log_path=log, schedule_seconds=0
    )
    with LocalStack(options).start() as running:
        yield running
    print(f"functions' logs: {log}")


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Client:
    return Client(stack, stack.session())


@pytest.fixture
def case_id(client: Client) -> Iterator[str]:
    """A fresh case id; the case's conversation is left at the end so its agent is free for the next test."""
    value = f"e2e-{uuid.uuid4().hex[:12]}"
    yield value
    client.call("DELETE", f"/cases/{value}/conversation")


@pytest.fixture
def opened(client: Client, case_id: str) -> tuple[str, str]:
    """A case whose conversation is open and has an agent: (case id, conversation id)."""
    answer = client.open(case_id, {"customer": {"name": "Test Customer"}})
    assert answer.status_code == 201, answer.text
    client.wait_state(case_id, "with_agent")
    return case_id, str(answer.json()["conversationId"])
