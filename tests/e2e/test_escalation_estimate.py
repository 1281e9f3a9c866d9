"""The wait estimate measured against the emulator's actual waits: customers arrive faster than two agents can
serve them; each is told the estimate from the queue's figures at arrival (docs/escalation.md's formula), and
its actual wait is its Queued → AgentJoined time. The table is printed; the mean error must stay within one
average handling time (the formula's granularity: one agent freeing up)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casebridge.contact_center.chat_api_v2 import token_fetcher
from casebridge.contact_center.tokens import TokenProvider
from casebridge.escalation.availability import estimate_wait_seconds
from casebridge.escalation.metrics import RealtimeMetricsClient
from scripts.local_stack.stack import LocalStack, StackOptions
from tests.e2e.e2e_support import BILLING, Client, e2e_emulator_config, wait_until

HANDLING_S = 3.0  # a silent scripted agent ends a conversation after this long without a message


@pytest.fixture(scope="module")
def busy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = e2e_emulator_config()
    config.timings.agent_wrap_up_idle = HANDLING_S
    config.timings.metrics_refresh = 0.2
    options = StackOptions(
        stack_name="casebridge-e2e-estimate",
        emulator_config=config,
        log_path=Path(tmp_path_factory.mktemp("e2e-estimate")) / "functions.log",
        schedule_seconds=0,
        chat_page=False,
        channel_queue_id=BILLING,  # two agents
    )
    with LocalStack(options).start() as running:
        yield running


def test_the_estimate_against_actual_waits(busy_stack: LocalStack) -> None:
    client = Client(busy_stack, busy_stack.session())
    config = busy_stack.emulator.config
    tokens = TokenProvider(
        "estimate",
        token_fetcher(busy_stack.emulator.base_url, lambda: (config.metrics_api_key, config.metrics_api_secret)),
    )
    metrics = RealtimeMetricsClient(busy_stack.emulator.base_url, "us", tokens)

    def served(case_id: str) -> int:
        events = {e["type"]: e["occurredAt"] for e in client.timeline(case_id)}
        return int(events["AgentJoined"] - events["Queued"]) if "AgentJoined" in events and "Queued" in events else -1

    warm_up = [f"est-warm-{i}" for i in range(2)]
    for case_id in warm_up:
        assert client.open(case_id).status_code == 201
    for case_id in warm_up:
        client.wait_event(case_id, "HandedBack")  # the queue has a handling time now
    time.sleep(0.5)
    rows = []
    for i in range(6):
        case_id = f"est-{i}"
        figures = metrics.queue_figures(BILLING)
        estimate = estimate_wait_seconds(figures)
        assert client.open(case_id).status_code == 201
        rows.append((case_id, figures.waiting, figures.available, estimate))
        client.wait_event(case_id, "Queued")
        time.sleep(0.7)

    def all_served() -> bool:
        return all(served(case_id) >= 0 for case_id, *_ in rows)

    wait_until("every customer served", all_served, timeout=HANDLING_S * 6 + 10)
    errors = []
    print("\ncase | waiting | available | estimate s | actual s")
    for case_id, waiting, available, estimate in rows:
        actual = served(case_id) / 1000
        print(f"{case_id} | {waiting} | {available} | {estimate} | {actual:.1f}")
        assert estimate is not None
        errors.append(abs(estimate - actual))
    mean_error = sum(errors) / len(errors)
    print(f"mean absolute error {mean_error:.1f} s (handling time {HANDLING_S} s)")
    assert mean_error <= HANDLING_S + 1, errors
