"""Hardening against the 8x8 emulator over real HTTP, on both 8x8 APIs: an ambiguous create.

The emulator's `accept_then_drop` fault creates the conversation, then closes the connection without an answer.
Each test fails on the code before the fix (6da1109: a second conversation) and passes now.
"""

from __future__ import annotations

import json

import pytest

from tests.guarantees.cb_guarantees_harness import Harness
from tests.support.connector import reset_casebridge

APIS = ["chat-api-v2", "chat-gateway-v1"]


def use_api(h: Harness, monkeypatch: pytest.MonkeyPatch, api: str) -> None:
    """The harness provisions Chat API v2; for the Gateway, a Gateway webhook and channel on the same emulator."""
    if api == "chat-api-v2":
        return
    _, channel_id = h.emulator.provision(
        h.bridge._receiver.url,  # the bridge the v2 webhook uses
        "101",
        name="casebridge-gw",
        version=api,
    )
    monkeypatch.setenv("EIGHTXEIGHT_API", api)
    monkeypatch.setenv("EIGHTXEIGHT_CHANNEL_ID", channel_id)
    reset_casebridge()  # the next request builds the Gateway client, webhook dialect and key URL


@pytest.mark.parametrize("api", APIS)
def test_an_ambiguous_create_is_looked_up_and_adopted_not_created_twice(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """Item 4: 8x8 creates the conversation and the connection drops before its answer (the client cannot know
    whether it exists). The claim is released marked ambiguous; the retry looks the conversation up by caseId
    (v2: `customer.caseId` filter; Gateway: FIQL `user.caseId==`) and adopts it. One conversation, one create."""
    h = harness
    use_api(h, monkeypatch, api)
    h.emulator.add_fault("accept_then_drop", "create_conversation", count=1)
    first = h.open_case("ambiguous-open")
    assert first["statusCode"] == 503, first
    [created] = h.conversations_for_case("ambiguous-open")  # 8x8 did create it
    again = h.open_case("ambiguous-open")
    assert again["statusCode"] in (200, 201), again
    assert json.loads(again["body"])["conversationId"] == created
    assert h.conversations_for_case("ambiguous-open") == [created]
    assert h.engine.request_counts()["create_conversation"] == 1
    assert h.metrics.counts["ConversationsReconciled"] == 1
    h.post_message("ambiguous-open", "does it arrive in the adopted conversation?")
    h.drain(timeout=20)
    assert h.transcript_texts(created) == ["does it arrive in the adopted conversation?"]


@pytest.mark.parametrize("api", APIS)
def test_an_ambiguous_create_by_a_first_message_is_adopted_too(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """Item 4, the sender's path: the first message opens the case; the create times out after 8x8 created
    the conversation. The queue's retry adopts it, and the message arrives there once."""
    h = harness
    use_api(h, monkeypatch, api)
    h.emulator.add_fault("accept_then_drop", "create_conversation", count=1)
    h.post_message("ambiguous-message", "first words")
    h.drain(timeout=30)
    [created] = h.conversations_for_case("ambiguous-message")
    assert h.case_conversation("ambiguous-message") == created
    assert h.engine.request_counts()["create_conversation"] == 1
    assert h.transcript_texts(created) == ["first words"]
