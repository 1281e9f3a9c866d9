"""MessageFailed goes through the case's outbox like every other event: on the timeline with its outbox mark
in the transaction that records the failed message, then published. A failed publish leaves it where the next
request (or the outbox sweeper) finds it; it is never only on the bus, or nowhere."""

from __future__ import annotations

from typing import Any

import pytest

from casebridge import messages
from casebridge.errors import StoreBusy
from casebridge.outbound_queue import OutboundMessage
from casebridge.outbox import flush_outbox
from casebridge.publisher import PublishFailed
from casebridge.store import MessageRecord, MessageStatus, StaleCase
from tests.unit.test_delivery_edges import fail_publishes

CASE_ID = "case-never-recorded"


def outbound(case_id: str = CASE_ID) -> OutboundMessage:
    return OutboundMessage(case_id, "m-1", "hello", "user", 1)


def failed_record() -> MessageRecord:
    return MessageRecord("m-1", MessageStatus.FAILED, 3, 1)


def message_failed_on_timeline(services: Any, case_id: str = CASE_ID) -> list[str]:
    entries, _ = services.store.list_timeline(case_id, None, 50)
    return [e.type for e in entries if e.type == "MessageFailed"]


def test_message_failed_of_a_case_without_its_item_is_recorded_on_the_outbox_when_its_publish_fails(
    services: Any, fifo_queues: Any, event_bus: Any
) -> None:
    fail_publishes(services, False)
    with pytest.raises(PublishFailed):
        messages.dead_letter(services, outbound(), failed_record(), None, "8x8 answered 400")
    assert message_failed_on_timeline(services) == ["MessageFailed"], "on the timeline although the bus refused it"
    case = services.store.get_case(CASE_ID)
    assert case is not None and len(case.pending_publish) == 1, "and on the case's outbox"
    assert event_bus.published() == []
    flush_outbox(services, case)
    [published] = event_bus.published()
    assert (published["detail-type"], published["detail"]["messageId"]) == ("MessageFailed", "m-1")


def test_message_failed_of_a_case_that_keeps_changing_is_parked_and_recorded_on_the_redelivery(
    services: Any, fifo_queues: Any, event_bus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write of the MessageFailed loses its race with the case's other writes: the failed record still
    stops a resend and holds the event, and the queue's redelivery puts it on the timeline and the bus."""
    services.store.claim_opening("busy-case", 30_000)
    services.store.record_conversation("busy-case", "conv-busy", "channel-1")
    record = services.store.record_message_failed

    def always_stale(*args: Any, **kwargs: Any) -> Any:
        raise StaleCase

    monkeypatch.setattr(services.store, "record_message_failed", always_stale)
    with pytest.raises(StoreBusy):
        messages.dead_letter(services, outbound("busy-case"), failed_record(), "conv-busy", "8x8 answered 400")
    assert event_bus.published() == [] and message_failed_on_timeline(services, "busy-case") == []
    _, held = services.store.lookup_for_delivery("busy-case", "m-1")
    assert held is not None and held.status is MessageStatus.FAILED and held.parked_event is not None

    monkeypatch.setattr(services.store, "record_message_failed", record)
    assert messages.deliver_message(services, outbound("busy-case"), 2, "receipt") == "failed"
    assert message_failed_on_timeline(services, "busy-case") == ["MessageFailed"]
    [published] = event_bus.published()
    assert published["detail"]["messageId"] == "m-1"
    _, settled = services.store.lookup_for_delivery("busy-case", "m-1")
    assert settled is not None and settled.parked_event is None
