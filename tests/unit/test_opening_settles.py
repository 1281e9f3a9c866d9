"""Opening a case's conversation after a create whose outcome is unknown: 8x8 may still be making the conversation,
so until the settle period ends an opener that finds none waits (409 with Retry-After) instead of creating a
second one, and adopts it as soon as a lookup finds it; after the period, it creates. And what follows recording
the conversation (ConversationOpened, early events) is taken in even when the opener's writes all lose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from casebridge import clock
from casebridge.business_api.models import OpenConversationRequest
from casebridge.cases import RECORD_TRIES, customer_leaves, open_conversation
from casebridge.errors import Conflict, ContactCenterUnavailable
from casebridge.outbox_sweeper import sweep_outbox
from casebridge.store import StaleCase
from tests.support.fakes import FakeContactCenter
from tests.support.samples import CASE_ID, CONVERSATION_ID


class SteppingClock:
    """Virtual time: sleeping moves both clocks, nothing waits."""

    def __init__(self) -> None:
        self.wall, self.mono = 1_790_000_000.0, 0.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def stepping() -> Iterator[SteppingClock]:
    stepping = SteppingClock()
    clock.set_clock(stepping)
    yield stepping
    clock.set_clock(None)


def timed_out_create(fake_8x8: FakeContactCenter) -> None:
    fake_8x8.errors["create"] = [ContactCenterUnavailable("8x8 did not answer the create", ambiguous=True)]


def timeline_types(services: Any) -> list[str]:
    entries, _ = services.store.list_timeline(CASE_ID, None, 50)
    return [e.type for e in entries]


def test_while_an_unknown_create_settles_an_opener_that_finds_nothing_waits_then_creates_after(
    services: Any, fake_8x8: FakeContactCenter, stepping: SteppingClock
) -> None:
    timed_out_create(fake_8x8)
    with pytest.raises(ContactCenterUnavailable):
        open_conversation(services, CASE_ID, OpenConversationRequest())
    settle = services.settings.create_settle_seconds
    assert settle >= 10

    with pytest.raises(Conflict) as waited:  # 8x8 has nothing yet, and may still be making it
        open_conversation(services, CASE_ID, OpenConversationRequest())
    assert fake_8x8.created == []  # the timed-out create raised before the fake recorded it: nothing was made
    assert waited.value.retry_after is not None and 1 <= waited.value.retry_after <= settle
    assert services.store.get_case(CASE_ID).conversation_id is None

    stepping.sleep(settle)  # the settle period is over: 8x8 made nothing, so a conversation is created
    case, created = open_conversation(services, CASE_ID, OpenConversationRequest())
    assert (case.conversation_id, created, len(fake_8x8.created)) == (CONVERSATION_ID, True, 1)


def test_a_conversation_that_appears_while_the_create_settles_is_adopted_at_once(
    services: Any, fake_8x8: FakeContactCenter, stepping: SteppingClock
) -> None:
    timed_out_create(fake_8x8)
    with pytest.raises(ContactCenterUnavailable):
        open_conversation(services, CASE_ID, OpenConversationRequest())
    fake_8x8.found[CASE_ID] = "conv-made-late"  # 8x8 finished the timed-out create
    started = stepping.mono
    case, created = open_conversation(services, CASE_ID, OpenConversationRequest())
    assert (case.conversation_id, created, fake_8x8.created) == ("conv-made-late", True, [])
    assert stepping.mono - started < 1  # no waiting for the settle period


def test_a_lookup_that_times_out_does_not_restart_the_settle_period(
    services: Any, fake_8x8: FakeContactCenter, stepping: SteppingClock
) -> None:
    timed_out_create(fake_8x8)
    with pytest.raises(ContactCenterUnavailable):
        open_conversation(services, CASE_ID, OpenConversationRequest())
    settles_at = services.store.get_case(CASE_ID).opening_settles_at
    assert settles_at > clock.now_ms()
    fake_8x8.errors["find"] = [ContactCenterUnavailable("8x8 did not answer the lookup", ambiguous=True)]
    with pytest.raises(ContactCenterUnavailable):
        open_conversation(services, CASE_ID, OpenConversationRequest())
    assert services.store.get_case(CASE_ID).opening_settles_at == settles_at


def test_conversation_opened_lost_by_the_opener_is_recorded_by_the_sweeper(
    services: Any, fake_8x8: FakeContactCenter, stepping: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = services.store.record_case_event

    def always_busy(case: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        if entry.type == "ConversationOpened":
            raise StaleCase("another writer took the case's next sequence")
        return original(case, entry, *args, **kwargs)

    monkeypatch.setattr(services.store, "record_case_event", always_busy)
    with pytest.raises(Conflict):
        open_conversation(services, CASE_ID, OpenConversationRequest())
    case = services.store.get_case(CASE_ID)
    assert case.conversation_id == CONVERSATION_ID and case.early_events_untaken
    assert "ConversationOpened" not in timeline_types(services)

    monkeypatch.setattr(services.store, "record_case_event", original)
    stepping.sleep(services.settings.outbox_sweep_delay_seconds + 1)
    sweep_outbox(services)
    sweep_outbox(services)  # a second sweep records nothing more
    assert timeline_types(services).count("ConversationOpened") == 1
    assert not services.store.get_case(CASE_ID).early_events_untaken


def test_taking_in_a_new_conversation_is_the_openers_turn_until_it_lets_go(
    services: Any, fake_8x8: FakeContactCenter, stepping: SteppingClock
) -> None:
    assert services.store.claim_opening(CASE_ID, 30_000)
    services.store.record_conversation(CASE_ID, CONVERSATION_ID, "channel-1")
    case = services.store.get_case(CASE_ID)
    assert case.early_events_untaken and not case.take_in_due(clock.now_ms())  # the opener's turn
    services.store.let_go_of_take_in(CASE_ID)  # the opener failed and let go
    assert services.store.get_case(CASE_ID).take_in_due(clock.now_ms())


def test_a_customer_leaving_after_the_opener_lost_conversation_opened_finds_it_first_on_the_timeline(
    services: Any, fake_8x8: FakeContactCenter, stepping: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = services.store.record_case_event
    lost: list[str] = []

    def busy_once(case: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        if entry.type == "ConversationOpened" and len(lost) < RECORD_TRIES:  # every try of the opener loses
            lost.append(entry.event_id)
            raise StaleCase("another writer took the case's next sequence")
        return original(case, entry, *args, **kwargs)

    monkeypatch.setattr(services.store, "record_case_event", busy_once)
    with pytest.raises(Conflict):
        open_conversation(services, CASE_ID, OpenConversationRequest())
    customer_leaves(services, CASE_ID)
    assert timeline_types(services) == ["ConversationOpened", "CustomerLeft"]
