"""The customer leaving is one fact: one CustomerLeft on the timeline and on the bus, with one eventId, whichever
of the API's own answer (DELETE /conversation) and 8x8's "user left" webhook (Chat Gateway) commits first."""
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.connector import map_case
from tests.support.signing import WebhookSigner

CASE_ID = "c-left"
CONVERSATION_ID = "conv-left"


def user_left() -> bytes:
    from casebridge.clock import now_ms

    return json.dumps(
        {
            "eventType": "MEMBERS_CHANGED",
            "conversationId": CONVERSATION_ID,
            "timestamp": now_ms(),
            "data": {"memberType": "user", "change": "left", "id": "crm-42"},
        }
    ).encode()


def customer_lefts(services: Any, event_bus: Any) -> tuple[list[str], list[str]]:
    on_bus = [e["detail"]["eventId"] for e in event_bus.published() if e["detail-type"] == "CustomerLeft"]
    entries, _ = services.store.list_timeline(CASE_ID, None, 50)
    return on_bus, [e.event_id for e in entries if e.type == "CustomerLeft"]


def test_the_api_committing_while_8x8s_user_left_is_being_handled_gives_one_customer_left(
    gateway_services: Any, webhook_signer: WebhookSigner, event_bus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8x8's "user left" has read the case (not closed yet); before its write commits, the API's own answer
    commits the CustomerLeft. The webhook's write then finds the case changed and closed: one fact, one event."""
    from casebridge import cases, webhooks

    map_case(CASE_ID, CONVERSATION_ID)
    store = gateway_services.store
    record = store.record_case_event
    raced: list[bool] = []

    def api_first(case: Any, entry: Any, live: Any, receipt: Any = None, **kwargs: Any) -> Any:
        if receipt is not None and entry.type == "CustomerLeft" and not raced:
            raced.append(True)
            cases.customer_leaves(gateway_services, CASE_ID)
        return record(case, entry, live, receipt, **kwargs)

    monkeypatch.setattr(store, "record_case_event", api_first)
    body = user_left()
    answer = webhooks.handle_webhook(gateway_services, webhook_signer.headers(body), body)
    assert raced and answer["status"] == "kept"
    on_bus, on_timeline = customer_lefts(gateway_services, event_bus)
    assert on_bus == on_timeline and len(on_timeline) == 1, (on_bus, on_timeline)


def test_8x8s_user_left_committing_first_makes_the_api_record_nothing_more(
    gateway_services: Any, webhook_signer: WebhookSigner, event_bus: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casebridge import cases, webhooks

    map_case(CASE_ID, CONVERSATION_ID)
    store = gateway_services.store
    record = store.record_case_event
    raced: list[bool] = []

    def webhook_first(case: Any, entry: Any, live: Any, receipt: Any = None, **kwargs: Any) -> Any:
        if receipt is None and entry.type == "CustomerLeft" and not raced:
            raced.append(True)
            body = user_left()
            assert webhooks.handle_webhook(gateway_services, webhook_signer.headers(body), body)["status"] == "accepted"
        return record(case, entry, live, receipt, **kwargs)

    monkeypatch.setattr(store, "record_case_event", webhook_first)
    assert cases.customer_leaves(gateway_services, CASE_ID).live.state.value == "closed"
    assert raced
    on_bus, on_timeline = customer_lefts(gateway_services, event_bus)
    assert on_bus == on_timeline and len(on_timeline) == 1, (on_bus, on_timeline)
