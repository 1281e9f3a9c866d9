"""Every 8x8 event casebridge answers 2xx reaches the business: on the case timeline and on the bus, whatever its
arrival order, its size, a failed publish or a race. The real handlers; AWS on moto; 8x8's client faked."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.events import EVENT_EXTRAS, webhook_body
from tests.support.samples import CONVERSATION_ID, invoke, sample_webhook_event
from tests.support.signing import WebhookSigner
from tests.unit.test_delivery_edges import fail_publishes, get_case, open_case, types


def deliver(functions: SimpleNamespace, signer: WebhookSigner, body: bytes, **sign: Any) -> Any:
    return invoke(functions.webhook, sample_webhook_event("chat-api-v2/webhook_queued.json", signer, body=body, **sign))


# ---- early events: adopted whatever happens to a publish ----------------------------------------------------
def test_early_events_are_adopted_when_conversation_opened_cannot_be_published(
    functions: SimpleNamespace, services: Any, event_bus: Any, webhook_signer: WebhookSigner
) -> None:
    """QUEUED arrives before the case knows its conversation; publishing ConversationOpened fails. The early event
    is still taken into the case (state, timeline), and both reach the bus with the next request."""
    body = webhook_body("QUEUED", CONVERSATION_ID, int(time.time() * 1000), **EVENT_EXTRAS["QUEUED"])
    assert deliver(functions, webhook_signer, body).body["status"] == "kept"
    fail_publishes(services, False)
    first = open_case(functions)
    assert first.status >= 500, first.raw
    assert services.store.early_events(CONVERSATION_ID) == [], "adopted although the publish failed"
    view = get_case(functions)
    assert (view.status, view.body["state"]) == (200, "queued"), view.raw
    assert types(event_bus) == ["ConversationOpened", "Queued"]


def test_an_open_retry_adopts_early_events_a_failed_open_left_behind(
    functions: SimpleNamespace,
    services: Any,
    event_bus: Any,
    webhook_signer: WebhookSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The open recorded the conversation and then failed before adopting (here: the store's query fails once).
    The client's retry of the open takes the early events in."""
    body = webhook_body("QUEUED", CONVERSATION_ID, int(time.time() * 1000), **EVENT_EXTRAS["QUEUED"])
    assert deliver(functions, webhook_signer, body).body["status"] == "kept"
    real = services.store.early_events
    calls = {"n": 0}

    def failing_once(conversation_id: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected: the query failed")
        return real(conversation_id)

    monkeypatch.setattr(services.store, "early_events", failing_once)
    assert open_case(functions).status >= 500
    retry = open_case(functions)
    assert retry.status in (200, 201), retry.raw
    assert real(CONVERSATION_ID) == []
    view = get_case(functions)
    assert view.body["state"] == "queued", view.raw
    assert types(event_bus) == ["ConversationOpened", "Queued"]
