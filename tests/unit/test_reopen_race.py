"""A customer writes again right after leaving, while 8x8's own events about the leave (its user left, agent left,
idle) are still being recorded: the case's reopen request must not be lost to that race, or 8x8's new QUEUED is
ignored and the case stays closed. The real handlers; AWS is moto, 8x8 the fake client."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.store.records import CaseRecord
from tests.support.fakes import FakeContactCenter
from tests.support.queue import process, receive, sqs_batch
from tests.support.samples import accept_messages
from tests.support.signing import WebhookSigner
from tests.unit.test_delivery_edges import deliver_event, get_case, leave, open_case


def test_a_reopen_asked_while_8x8s_late_events_land_still_reopens(
    functions: SimpleNamespace,
    services: Any,
    fake_8x8: FakeContactCenter,
    fifo_queues: Any,
    webhook_signer: WebhookSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t0 = int(time.time() * 1000)
    assert open_case(functions).status == 201
    deliver_event(functions, webhook_signer, "QUEUED", t0)
    deliver_event(functions, webhook_signer, "AGENT_JOINED", t0 + 1_000)
    assert leave(functions).body["state"] == "closed"
    accept_messages(functions.outbound, "I am back")

    # 8x8's event about the leave is recorded between the sender's read of the case and its reopen request.
    store = services.store
    request_reopen = store.request_reopen
    raced: list[bool] = []

    def racing(case: CaseRecord, message_id: str) -> bool:
        if not raced:
            raced.append(True)
            deliver_event(functions, webhook_signer, "AGENT_LEFT", t0 + 2_000)
        return bool(request_reopen(case, message_id))

    monkeypatch.setattr(store, "request_reopen", racing)
    assert process(functions, sqs_batch(receive(fifo_queues.outbound_url))) == []
    assert raced and [text for _, text, _ in fake_8x8.sent] == ["I am back"]
    deliver_event(functions, webhook_signer, "QUEUED", t0 + 60_000)
    assert get_case(functions).body["state"] == "queued"
