"""One conversation per case, on every edge of an open, against the 8x8 emulator over real HTTP, on both APIs:
an answer that does not prove 8x8 did nothing, a stale read racing an ambiguous create, a create on a caller's
channel, a retry after adoption, the same customer again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from casebridge.services import get_services
from tests.guarantees.cb_guarantees_harness import Harness
from tests.guarantees.test_guarantee_hardening import APIS, use_api
from tests.support.events import api_gateway_event
from tests.support.lambdas import LambdaContext

CUSTOMER = {"name": "Jane Doe", "email": "jane@example.com"}
HISTORY = [{"authorType": "bot", "text": "Hello, how can I help?"}, {"authorType": "user", "text": "A person please"}]


def open_with(h: Harness, case_id: str, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = h.lifecycle.lambda_handler(
        api_gateway_event(
            "POST", "/cases/{caseId}/conversation", body=json.dumps(body), path_parameters={"caseId": case_id}
        ),
        LambdaContext(),
    )
    return answer


def second_channel(h: Harness, api: str) -> str:
    """Another channel of the tenant, on the same queue, for a caller that names its channel."""
    _, channel_id = h.emulator.provision(h.bridge._receiver.url, "101", name="casebridge-second", version=api)
    return channel_id


@pytest.mark.parametrize("status", [502, 503, 504])
@pytest.mark.parametrize("api", APIS)
def test_a_gateway_error_after_8x8_created_the_conversation_is_looked_up_not_created_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, api: str, status: int
) -> None:
    """8x8's edge answers 502/503/504 although the conversation was created behind it: that answer does not prove
    8x8 did nothing, so the next opener looks the conversation up and adopts it."""
    h = harness
    use_api(h, monkeypatch, api)
    h.emulator.add_fault("accept_then_fail", "create_conversation", count=1, status=status)
    first = h.open_case("edge-error")
    assert first["statusCode"] in (502, 503), first
    [created] = h.conversations_for_case("edge-error")
    again = h.open_case("edge-error")
    assert again["statusCode"] in (200, 201), again
    assert json.loads(again["body"])["conversationId"] == created
    assert h.conversations_for_case("edge-error") == [created]
    assert h.engine.request_counts()["create_conversation"] == 1


@pytest.mark.parametrize("api", APIS)
def test_an_opener_that_read_the_case_before_an_ambiguous_create_still_looks_it_up(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """Opener A reads the case (nothing there), then request B claims, its create reaches 8x8 and the connection
    drops, B releases the claim marked ambiguous; only then does A take the claim. A must decide from the state
    its claim was taken on (ambiguous: look up), not from its earlier read (nothing: create)."""
    h = harness
    use_api(h, monkeypatch, api)
    store = get_services().store
    claim = store.claim_opening
    raced: list[dict[str, Any]] = []

    def b_runs_first(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append({})
            h.emulator.add_fault("accept_then_drop", "create_conversation", count=1)
            raced[0] = h.open_case("stale-read")  # B: its create is ambiguous
        return claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_opening", b_runs_first)
    a = h.open_case("stale-read")
    assert raced[0]["statusCode"] == 503, raced[0]
    assert a["statusCode"] in (200, 201), a
    [created] = h.conversations_for_case("stale-read")
    assert json.loads(a["body"])["conversationId"] == created
    assert h.engine.request_counts()["create_conversation"] == 1


@pytest.mark.parametrize("api", APIS)
def test_an_ambiguous_create_on_the_callers_channel_is_looked_up_on_that_channel(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """The caller names its channel; the create on it is ambiguous. The next opener (the case's first message, which
    names no channel) looks the conversation up on the channel the create used, adopts it, and the message
    arrives there; the caller's retry of its open is answered 200 with that conversation."""
    h = harness
    use_api(h, monkeypatch, api)
    channel = second_channel(h, api)
    h.emulator.add_fault("accept_then_drop", "create_conversation", count=1)
    request = {"customer": CUSTOMER, "channelId": channel}
    assert open_with(h, "other-channel", request)["statusCode"] == 503
    [created] = h.conversations_for_case("other-channel")
    h.post_message("other-channel", "written while the open was unsure")
    h.drain(timeout=30)
    assert h.conversations_for_case("other-channel") == [created]
    assert h.case_conversation("other-channel") == created
    assert h.case("other-channel")["channelId"] == channel
    assert h.transcript_texts(created) == ["written while the open was unsure"]
    retry = open_with(h, "other-channel", request)
    assert retry["statusCode"] == 200, retry
    assert json.loads(retry["body"])["conversationId"] == created
    assert h.engine.request_counts()["create_conversation"] == 1


@pytest.mark.parametrize("api", APIS)
def test_the_retry_of_an_open_whose_conversation_was_adopted_by_another_request_is_200(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """An open with history creates the conversation but its answer is lost; a message adopts the conversation.
    The open's retry is the same request, and its history is in that conversation: 200, not 409."""
    h = harness
    use_api(h, monkeypatch, api)
    h.emulator.add_fault("accept_then_drop", "create_conversation", count=1)
    request = {"customer": CUSTOMER, "history": HISTORY}
    assert open_with(h, "adopted", request)["statusCode"] == 503
    h.post_message("adopted", "the first message adopts it")
    h.drain(timeout=30)
    [created] = h.conversations_for_case("adopted")
    retry = open_with(h, "adopted", request)
    assert retry["statusCode"] == 200, retry
    assert json.loads(retry["body"])["conversationId"] == created
    other = open_with(h, "adopted", {"customer": CUSTOMER, "history": HISTORY[:1]})
    assert other["statusCode"] == 409, "another history still cannot be applied"
    assert h.engine.request_counts()["create_conversation"] == 1


@pytest.mark.parametrize("api", APIS)
def test_opening_again_with_the_same_customer_and_no_history_is_200(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """Nothing would change, so nothing is refused (Chat API v2 cannot update a customer: that alone is no
    reason for a 409). Other customer data: the Gateway updates it (200); v2 cannot (409)."""
    h = harness
    use_api(h, monkeypatch, api)
    assert open_with(h, "same-customer", {"customer": CUSTOMER, "history": HISTORY})["statusCode"] == 201
    again = open_with(h, "same-customer", {"customer": CUSTOMER})
    assert again["statusCode"] == 200, again
    assert h.engine.request_counts().get("patch_conversation", 0) == 0
    changed = open_with(h, "same-customer", {"customer": {**CUSTOMER, "phone": "+15550100"}})
    assert changed["statusCode"] == (200 if api == "chat-gateway-v1" else 409), changed
