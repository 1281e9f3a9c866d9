"""casebridge.state: how 8x8's events move a case's live state."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casebridge.business_api.views import live_view
from casebridge.events import EventKind
from casebridge.state import CaseState, LiveState, apply_event, customer_left, reopen_requested

E = EventKind
QUEUED = {"queueId": "101", "queueName": "Support"}
AGENT = {"agentId": "agent-7", "agentName": "Grace"}


def run(events: list[tuple[EventKind, int, dict[str, Any]]], start: LiveState | None = None) -> LiveState:
    live = start or LiveState()
    for event_type, ts, detail in events:
        live = apply_event(live, event_type, ts, detail) or live
    return live


def test_initial_state_is_open() -> None:
    live = LiveState()
    assert live.state is CaseState.OPEN
    assert live_view(live) == {"state": "open", "agent": None, "queue": None, "transferPending": False}


def test_open_to_queued_records_the_queue() -> None:
    after = apply_event(LiveState(), E.QUEUED, 100, QUEUED)
    assert after is not None
    assert (after.state, after.state_at, after.queue_id, after.queue_name) == (CaseState.QUEUED, 100, "101", "Support")
    assert live_view(after)["queue"] == {"id": "101", "name": "Support"}


def test_queued_to_with_agent_records_the_agent() -> None:
    after = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)])
    assert after.state is CaseState.WITH_AGENT
    assert (after.agent_id, after.agent_name, after.queue_id) == ("agent-7", "Grace", "101")
    assert live_view(after)["agent"] == {"id": "agent-7", "name": "Grace"}


def test_agent_left_ends_the_interaction_and_forgets_the_agent() -> None:
    after = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT), (E.AGENT_LEFT, 300, AGENT)])
    assert after.state is CaseState.AGENT_LEFT
    assert after.agent_id is None and after.agent_name is None
    assert after.state_at == 300


def test_reopen_after_agent_left_queues_again() -> None:
    after = run(
        [
            (E.QUEUED, 100, QUEUED),
            (E.AGENT_JOINED, 200, AGENT),
            (E.AGENT_LEFT, 300, AGENT),
            (E.QUEUED, 400, {"queueId": "102", "queueName": "Billing"}),
        ]
    )
    assert after.state is CaseState.QUEUED
    assert after.queue_id == "102"


def test_queued_clears_a_previous_agent() -> None:
    start = LiveState(state=CaseState.WITH_AGENT, state_at=10, agent_id="a", agent_name="A")
    after = apply_event(start, E.QUEUED, 20, QUEUED)
    assert after is not None and after.agent_id is None and after.agent_name is None


@pytest.mark.parametrize("event_type", [E.AGENT_MESSAGE, E.VERIFY, E.AGENT_TYPING, E.UNHANDLED])
def test_informational_events_do_not_change_state(event_type: EventKind) -> None:
    start = LiveState(state=CaseState.WITH_AGENT, state_at=100, agent_id="agent-7")
    assert apply_event(start, event_type, 200, {"text": "hi"}) is None


def test_transfer_sequence_left_is_not_the_end() -> None:
    live = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)])
    live = apply_event(live, E.TRANSFERRED, 300, {}) or pytest.fail("TRANSFER must change state")
    assert (live.state, live.transfer_pending) == (CaseState.QUEUED, True)
    live = apply_event(live, E.AGENT_LEFT, 301, AGENT) or pytest.fail("AGENT_LEFT must change state")
    assert live.state is CaseState.QUEUED, "the AGENT_LEFT that follows a TRANSFER is not the end"
    assert live.agent_id is None
    live = apply_event(live, E.QUEUED, 302, {"queueId": "102", "queueName": "Billing"}) or pytest.fail("QUEUED")
    assert (live.state, live.queue_id) == (CaseState.QUEUED, "102")
    live = apply_event(live, E.AGENT_JOINED, 400, {"agentId": "agent-9", "agentName": "Alan"}) or pytest.fail("JOIN")
    assert (live.state, live.agent_id, live.transfer_pending) == (CaseState.WITH_AGENT, "agent-9", False)
    live = apply_event(live, E.AGENT_LEFT, 500, {"agentId": "agent-9"}) or pytest.fail("LEFT")
    assert live.state is CaseState.AGENT_LEFT, "after the new agent joined, AGENT_LEFT is the end again"


def test_out_of_order_older_event_is_ignored() -> None:
    live = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT), (E.AGENT_LEFT, 300, AGENT)])
    assert apply_event(live, E.AGENT_JOINED, 250, AGENT) is None
    assert apply_event(live, E.QUEUED, 99, QUEUED) is None


def test_event_with_the_same_timestamp_still_applies() -> None:
    live = apply_event(LiveState(), E.QUEUED, 100, QUEUED)
    assert live is not None
    after = apply_event(live, E.AGENT_JOINED, 100, AGENT)
    assert after is not None and after.state is CaseState.WITH_AGENT


def test_late_queued_after_agent_joined_does_not_move_back() -> None:
    # AGENT_JOINED (t=200) arrives before QUEUED (t=100)
    live = run([(E.AGENT_JOINED, 200, AGENT), (E.QUEUED, 100, QUEUED)])
    assert live.state is CaseState.WITH_AGENT
    assert live.agent_id == "agent-7"


def test_customer_left_closes() -> None:
    live = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)])
    closed = customer_left(live, 300)
    # 8x8's clock (state_at) is left alone; the connector's own time is only for display.
    assert (closed.state, closed.state_at, closed.changed_at, closed.transfer_pending) == (
        CaseState.CLOSED,
        200,
        300,
        False,
    )


def test_customer_left_never_moves_state_at_backwards() -> None:
    live = LiveState(state=CaseState.WITH_AGENT, state_at=1_000)
    assert customer_left(live, 500).state_at == 1_000


def test_closed_stays_closed_when_the_agent_leaves_after_the_customer() -> None:
    closed = customer_left(run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)]), 300)
    assert closed.agent_id is None
    assert apply_event(closed, E.AGENT_LEFT, 301, AGENT) is None, "a closed case stays closed"


def test_closed_ignores_events_older_than_the_close() -> None:
    closed = customer_left(LiveState(state=CaseState.WITH_AGENT, state_at=200), 300)
    for event_type, detail in ((E.AGENT_JOINED, AGENT), (E.QUEUED, QUEUED), (E.TRANSFERRED, {}), (E.AGENT_LEFT, AGENT)):
        assert apply_event(closed, event_type, 250, detail) is None


def test_customer_leaving_cancels_a_pending_transfer() -> None:
    live = run([(E.AGENT_JOINED, 100, AGENT), (E.TRANSFERRED, 200, {})])
    closed = customer_left(live, 300)
    assert closed.transfer_pending is False
    assert apply_event(closed, E.AGENT_LEFT, 301, AGENT) is None
    assert apply_event(closed, E.AGENT_JOINED, 302, AGENT) is None


def test_lambda_clock_ahead_of_8x8_does_not_ignore_a_real_reopen() -> None:
    """the customer leaves at Lambda time 10_000 while 8x8's clock says 200; the customer
    writes again, and 8x8's QUEUED at 300 must reopen the case."""
    closed = customer_left(run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)]), 10_000)
    assert apply_event(closed, E.QUEUED, 300, QUEUED) is None, "no reopen asked: still closed"
    reopened = apply_event(reopen_requested(closed), E.QUEUED, 300, QUEUED)
    assert reopened is not None and reopened.state is CaseState.QUEUED
    assert reopened.reopen_requested is False


def test_lambda_clock_behind_8x8_does_not_reopen_on_a_late_event() -> None:
    """the customer leaves at Lambda time 100 while 8x8's clock is at 200; 8x8's late
    AGENT_JOINED stamped 250 (sent before it saw the leave) must not reopen the case."""
    closed = customer_left(run([(E.QUEUED, 150, QUEUED), (E.AGENT_JOINED, 200, AGENT)]), 100)
    assert apply_event(closed, E.AGENT_JOINED, 250, AGENT) is None
    assert apply_event(closed, E.QUEUED, 260, QUEUED) is None


def test_gateway_idle_ends_a_live_interaction_only() -> None:
    with_agent = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)])
    idle = apply_event(with_agent, E.CONVERSATION_IDLE, 300, {})
    assert idle is not None and idle.state is CaseState.AGENT_LEFT and idle.agent_id is None
    assert apply_event(idle, E.CONVERSATION_IDLE, 400, {}) is None, "already ended: nothing new"
    transferring = apply_event(with_agent, E.TRANSFERRED, 300, {})
    assert transferring is not None
    assert apply_event(transferring, E.CONVERSATION_IDLE, 310, {}) is None, "a transfer is not the end"


def test_customer_left_on_the_8x8_side_closes() -> None:
    live = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT), (E.CUSTOMER_LEFT, 300, {})])
    assert live.state is CaseState.CLOSED and live.agent_id is None


_EVENT_TYPES = st.sampled_from(
    [E.QUEUED, E.AGENT_JOINED, E.AGENT_LEFT, E.TRANSFERRED, E.AGENT_MESSAGE, E.CONVERSATION_IDLE]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_EVENT_TYPES, st.integers(min_value=0, max_value=50)), min_size=1, max_size=12))
def test_state_time_never_moves_backwards(events: list[tuple[EventKind, int]]) -> None:
    live = LiveState()
    for event_type, ts in events:
        after = apply_event(live, event_type, ts, {**QUEUED, **AGENT})
        if ts < live.state_at:
            assert after is None, "an event older than the state must not change it"
        if after is not None:
            assert after.state_at >= live.state_at
            live = after


@settings(max_examples=200, deadline=None)
@given(st.permutations([(E.QUEUED, 100), (E.AGENT_JOINED, 200), (E.AGENT_MESSAGE, 250), (E.AGENT_LEFT, 300)]))
def test_any_arrival_order_ends_in_the_newest_events_state(order: list[tuple[EventKind, int]]) -> None:
    live = LiveState()
    for event_type, ts in order:
        live = apply_event(live, event_type, ts, {**QUEUED, **AGENT}) or live
    assert live.state_at == 300
    assert live.state is CaseState.AGENT_LEFT


def test_transfer_new_queue_queued_before_old_agent_left_is_still_waiting() -> None:
    live = run(
        [
            (E.QUEUED, 100, QUEUED),
            (E.AGENT_JOINED, 200, AGENT),
            (E.TRANSFERRED, 300, {}),
            (E.QUEUED, 301, {"queueId": "102", "queueName": "Billing"}),
            (E.AGENT_LEFT, 301, AGENT),
        ]
    )
    assert (live.state, live.queue_id, live.transfer_pending) == (CaseState.QUEUED, "102", True)
    joined = apply_event(live, E.AGENT_JOINED, 400, {"agentId": "agent-9", "agentName": "Kim"})
    assert joined is not None and (joined.state, joined.transfer_pending) == (CaseState.WITH_AGENT, False)


def test_customer_left_takes_the_agent_with_it() -> None:
    live = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)])
    closed = customer_left(live, 300)
    assert (closed.state, closed.agent_id, closed.agent_name) == (CaseState.CLOSED, None, None)
    assert apply_event(closed, E.AGENT_LEFT, 250, AGENT) is None, "an older AGENT_LEFT changes nothing"


# ---- the state is derived from the set of 8x8's events, not from their arrival order ------------------------
STATE_EVENT_KINDS = [E.QUEUED, E.TRANSFERRED, E.AGENT_JOINED, E.AGENT_LEFT, E.CONVERSATION_IDLE, E.CUSTOMER_LEFT]


def arrive(events: list[Any], start: LiveState | None = None) -> LiveState:
    from casebridge.state import record_event  # noqa: PLC0415 - the fold over 8x8's order

    live = start or LiveState()
    for event in events:
        live = record_event(live, event) or live
    return live


def state_events(draw: Any) -> list[Any]:
    from casebridge.state import StateEvent  # noqa: PLC0415

    kinds = draw(st.lists(st.sampled_from(STATE_EVENT_KINDS), min_size=1, max_size=8))
    times = draw(st.lists(st.integers(100, 110), min_size=len(kinds), max_size=len(kinds)))
    detail = {**QUEUED, **AGENT}
    return [StateEvent.of(kind, at, f"evt-{i}", detail) for i, (kind, at) in enumerate(zip(kinds, times, strict=True))]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_same_events_give_the_same_state_in_any_arrival_order(data: Any) -> None:
    """Any permutation of the same 8x8 events (ties on the timestamp included) gives one state, equal to the
    events applied in 8x8's order; a redelivered event changes nothing."""
    events = state_events(data.draw)
    permutation = data.draw(st.permutations(events))
    in_order = run([(e.kind, e.at, dict(e.detail)) for e in sorted(events, key=lambda e: e.order)])
    arrived = arrive(list(permutation))
    assert arrived.without_history() == in_order
    assert arrived == arrive(events)
    assert arrive([*permutation, permutation[0]]) == arrived


def test_a_late_customer_left_closes_the_case_in_either_order() -> None:
    """8x8's "user left" stamped before the agent left, arriving after it: the case closes in both orders."""
    from casebridge.state import StateEvent  # noqa: PLC0415

    live = run([(E.QUEUED, 100, QUEUED), (E.AGENT_JOINED, 200, AGENT)])
    left = StateEvent.of(E.CUSTOMER_LEFT, 300, "user-left", {})
    agent_left = StateEvent.of(E.AGENT_LEFT, 400, "agent-left", AGENT)
    assert arrive([agent_left, left], live).state is CaseState.CLOSED
    assert arrive([left, agent_left], live).state is CaseState.CLOSED


def test_the_kept_events_are_bounded_and_a_connector_transition_is_a_reset_point() -> None:
    from casebridge.state import MAX_KEPT_EVENTS, StateEvent  # noqa: PLC0415

    many = [StateEvent.of(E.QUEUED, 100 + i, f"q-{i}", QUEUED) for i in range(MAX_KEPT_EVENTS + 10)]
    live = arrive(many)
    assert len(live.events) == MAX_KEPT_EVENTS and live.state_at == 100 + MAX_KEPT_EVENTS + 9
    closed = customer_left(live, 5)
    assert closed.events == () and closed.base is None and closed.state is CaseState.CLOSED
