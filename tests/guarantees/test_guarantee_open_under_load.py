"""Two ways opening a case's conversation went wrong, found while tracing the 32-message race under machine load:
a create that times out while 8x8 is still making the conversation (the next opener found nothing and made a
second one), and ConversationOpened lost when every write of the opener lost to the case's other writers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from casebridge.services import get_services
from casebridge.store import StaleCase
from tests.guarantees.cb_guarantees_harness import PAST_TIMEOUT_S, Harness, both_apis
from tests.guarantees.test_guarantee_cases import sqs_batch
from tests.support.lambdas import LambdaContext, load_function

pytestmark = both_apis


def test_a_create_that_times_out_while_8x8_is_still_making_it_is_not_made_twice(harness: Harness) -> None:
    h = harness
    # 8x8 answers the create long after the connector's timeout ran out
    h.emulator.add_fault("latency", "create_conversation", count=1, seconds=PAST_TIMEOUT_S)
    outbound = load_function("outbound_sender")
    start = threading.Barrier(2)

    def deliver(text: str) -> None:
        start.wait()
        outbound.lambda_handler(sqs_batch("late-create", text), LambdaContext())

    threads = [threading.Thread(target=deliver, args=(f"m{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(100)
    assert not [t for t in threads if t.is_alive()], "a delivery never finished"
    h.wait_for_late_answer("create_conversation")
    assert len(h.conversations_for_case("late-create")) == 1


def test_conversation_opened_is_recorded_even_when_its_first_writes_lose_to_the_cases_other_writers(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    store = get_services().store
    original = store.record_case_event
    lost: list[str] = []

    def busy_case(case: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        if entry.type == "ConversationOpened" and len(lost) < 8:  # every try of the first request loses
            lost.append(entry.event_id)
            raise StaleCase("another writer took the case's next sequence")
        return original(case, entry, *args, **kwargs)

    monkeypatch.setattr(store, "record_case_event", busy_case)
    h.post_message("busy", "hello", client_id="m1")
    h.drain(timeout=30)
    assert lost, "the opener's ConversationOpened write was never tried"
    assert "ConversationOpened" in [e["type"] for e in h.timeline("busy")]
