"""The outbox sweeper (functions/outbox_sweeper, every minute): what a case's outbox holds longer than a short
delay reaches the bus even when nobody touches the case again; the age of the oldest pending entry is a metric."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge import clock, outbox_sweeper
from casebridge.clock import now_ms
from casebridge.errors import ContactCenterUnavailable
from scripts.local_stack.scheduler import build_scheduler
from scripts.local_stack.template import Template
from tests.support.fakes import FakeContactCenter
from tests.support.lambdas import LambdaContext, load_function
from tests.support.paths import ROOT
from tests.support.samples import CASE_ID, CONVERSATION_ID
from tests.support.signing import WebhookSigner
from tests.unit.test_delivery_edges import deliver_event, fail_publishes, open_case, types


@pytest.fixture
def metric_values(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    from casebridge import observability  # noqa: PLC0415 - after the environment is set

    seen: dict[str, float] = {}
    monkeypatch.setattr(observability.metrics, "add_metric", lambda name, value=1, **_: seen.__setitem__(name, value))
    return seen


def sweep() -> dict[str, Any]:
    answer: dict[str, Any] = load_function("outbox_sweeper").lambda_handler({}, LambdaContext())
    return answer


def test_an_event_of_a_case_nobody_touches_again_is_published_by_the_sweeper_after_its_delay(
    functions: SimpleNamespace,
    services: Any,
    event_bus: Any,
    monkeypatch: pytest.MonkeyPatch,
    metric_values: dict[str, float],
) -> None:
    fail_publishes(services, False)
    assert open_case(functions).status >= 500  # ConversationOpened recorded, its publish refused
    [(case_id, since)] = services.store.pending_outboxes()
    assert sweep() == {"pending": 1, "swept": 0, "failures": 0, "oldestPendingMs": pytest.approx(0, abs=5_000)}
    assert types(event_bus) == [], "within the delay the request that recorded it may still publish it"

    later = since + services.settings.outbox_sweep_delay_seconds * 1000 + 1
    monkeypatch.setattr(outbox_sweeper, "now_ms", lambda: later)
    answer = sweep()
    assert (answer["pending"], answer["swept"], answer["failures"]) == (1, 1, 0)
    assert metric_values["OutboxOldestPendingSeconds"] == pytest.approx((later - since) / 1000)
    assert types(event_bus) == ["ConversationOpened"]
    case = services.store.get_case(case_id)
    assert case is not None and case.pending_publish == frozenset()
    assert services.store.pending_outboxes() == [], "off the sweeper's index once nothing is pending"
    assert sweep()["pending"] == 0 and metric_values["OutboxOldestPendingSeconds"] == 0


def test_a_sweep_whose_publish_fails_leaves_the_case_for_the_next_sweep(
    functions: SimpleNamespace, services: Any, event_bus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_publishes(services, False, False)
    assert open_case(functions).status >= 500
    monkeypatch.setattr(outbox_sweeper, "now_ms", lambda: now_ms() + 3_600_000)
    assert sweep()["failures"] == 1
    assert len(services.store.pending_outboxes()) == 1
    assert sweep()["failures"] == 0
    assert types(event_bus) == ["ConversationOpened"]


class Ahead(clock.SystemClock):
    """The system's clock past an ambiguous create's settle period and the sweeper's delay."""

    def __init__(self, settings: Any) -> None:
        self.seconds: float = settings.create_settle_seconds + settings.outbox_sweep_delay_seconds + 1

    def time(self) -> float:
        return super().time() + float(self.seconds)


@pytest.fixture
def ambiguous_open(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, webhook_signer: WebhookSigner
) -> Iterator[None]:
    """An open whose create timed out (8x8 may have made the conversation), 8x8's QUEUED kept as an early event,
    and nobody opens the case again."""
    fake_8x8.errors["create"] = [ContactCenterUnavailable("8x8 timed out", ambiguous=True)]
    assert open_case(functions).status == 503
    deliver_event(functions, webhook_signer, "QUEUED", now_ms())
    yield
    clock.set_clock(None)


def test_an_ambiguous_create_nobody_retries_is_adopted_by_the_sweeper_once_it_settled(
    services: Any, fake_8x8: FakeContactCenter, event_bus: Any, ambiguous_open: None
) -> None:
    fake_8x8.found[CASE_ID] = CONVERSATION_ID  # 8x8 did make it
    sweep()
    assert services.store.get_case(CASE_ID).conversation_id is None, "not while 8x8 may still be making it"
    clock.set_clock(Ahead(services.settings))
    sweep()
    case = services.store.get_case(CASE_ID)
    assert (case.conversation_id, case.live.state.value) == (CONVERSATION_ID, "queued")  # its early event taken in
    assert types(event_bus) == ["ConversationOpened", "Queued"]
    assert fake_8x8.created == [], "looked up, never created: the channel may have given up"
    assert services.store.pending_outboxes() == []


def test_an_ambiguous_create_8x8_did_not_make_leaves_the_sweeper_and_the_next_open_looks_first(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter, event_bus: Any, ambiguous_open: None
) -> None:
    clock.set_clock(Ahead(services.settings))
    sweep()
    case = services.store.get_case(CASE_ID)
    assert case.conversation_id is None and case.opening_ambiguous
    assert fake_8x8.created == [] and services.store.pending_outboxes() == []
    assert open_case(functions).status == 201  # the channel's next open: a lookup (nothing), then the create
    assert len(fake_8x8.created) == 1


def test_the_local_stack_runs_the_sweepers_schedule_from_the_template() -> None:
    """`make local` and the e2e stack read template.yaml: the sweeper's Schedule event runs there too."""
    template = Template.load(ROOT / "template.yaml")
    invoked: list[str] = []

    def function(logical_id: str) -> Any:
        def invoke(event: dict[str, Any]) -> tuple[dict[str, Any], float]:
            invoked.append(event["resources"][0])
            return {}, 0.0

        return SimpleNamespace(logical_id=logical_id, invoke=invoke)

    scheduler = build_scheduler(template, {f: function(f) for f in template.functions()}, "us-east-1", "123456789012")
    [entry] = [e for e in scheduler.entries if e.function.logical_id == "OutboxSweeperFunction"]
    assert entry.period_s == 60
    scheduler.run_now("OutboxSweeperFunction")
    assert len(invoked) == 1 and "OutboxSweeperFunction" in invoked[0]
