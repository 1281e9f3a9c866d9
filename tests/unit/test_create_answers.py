"""What an 8x8 answer to a create or a message post means: only an answer that proves 8x8 made nothing is a clean
failure; any other (502/503/504 from 8x8's edge, a 5xx without 8x8's problem body) leaves the outcome unknown, so
the next opener looks the conversation up before creating one, and the sender counts the message's retry as a
possible duplicate (docs/guarantees.md: a duplicate only after an ambiguous attempt, and counted). Both 8x8 APIs.

Before, a 504 on a message post was a clean failure: had 8x8's edge timed out after 8x8 took the message, the
retry's duplicate went uncounted."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from casebridge.business_api.models import Customer
from casebridge.contact_center.base import NewConversation, RichMessage
from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher
from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client
from casebridge.contact_center.tokens import TokenProvider
from casebridge.errors import ContactCenterError

BASE = "https://api.8x8.test"
URLS = {
    "chat-gateway-v1": f"{BASE}/chat-gateway/v1/conversations",
    "chat-api-v2": f"{BASE}/vcc/us/chat/v2/tenant/acme-tenant/conversations",
}
PROBLEM = {"message": "Internal error", "errors": [{"code": "INTERNAL", "message": "database unavailable"}]}
ANSWERS = [
    # (status, body, ambiguous)
    (504, None, True),
    (504, {"message": "Gateway Timeout"}, True),  # an edge's body says nothing about the work behind it
    (502, "<html>Bad Gateway</html>", True),
    (503, None, True),
    (500, None, True),
    (500, "<html>oops</html>", True),
    (500, PROBLEM, False),  # 8x8's own problem body: it refused
    (429, None, False),
    (400, {"message": "bad", "errors": [{"code": "INVALID", "message": "name too long"}]}, False),
]


def client_for(api: str) -> Any:
    if api == "chat-gateway-v1":
        return ChatGatewayV1Client(BASE, "acme-tenant", lambda: "key-1", timeout=2.0)
    tokens = TokenProvider("acme-tenant", token_fetcher(BASE, lambda: ("key", "secret")))
    return ChatApiV2Client(BASE, "us", "acme-tenant", tokens, timeout=2.0)


def answer(rsps: responses.RequestsMock, url: str, status: int, body: Any) -> None:
    if body is None:
        rsps.post(url, status=status)
    elif isinstance(body, str):
        rsps.post(url, status=status, body=body, content_type="text/html")
    else:
        rsps.post(url, status=status, json=body, content_type="application/problem+json")


@pytest.mark.parametrize(("status", "body", "ambiguous"), ANSWERS)
@pytest.mark.parametrize("api", sorted(URLS))
def test_a_create_answer_that_does_not_prove_nothing_was_made_is_ambiguous(
    api: str, status: int, body: Any, ambiguous: bool
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/oauth/v2/token", json={"access_token": "token-1", "expires_in": "3600"})
        answer(rsps, URLS[api], status, body)
        with pytest.raises(ContactCenterError) as raised:
            client_for(api).create_conversation(NewConversation("channel-1", "case-1", Customer(), []))
    assert raised.value.ambiguous is ambiguous


@pytest.mark.parametrize(("status", "body", "ambiguous"), ANSWERS)
@pytest.mark.parametrize("api", sorted(URLS))
def test_a_message_post_answer_that_does_not_prove_nothing_was_taken_is_ambiguous(
    api: str, status: int, body: Any, ambiguous: bool
) -> None:
    """8x8's post-message call has no idempotency key: an edge's 504 may come after the message was taken."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/oauth/v2/token", json={"access_token": "token-1", "expires_in": "3600"})
        answer(rsps, f"{URLS[api]}/c-1/messages", status, body)
        with pytest.raises(ContactCenterError) as raised:
            client_for(api).send_message("c-1", "hi", "user")
    assert raised.value.ambiguous is ambiguous


@pytest.mark.parametrize(("status", "body", "ambiguous"), ANSWERS)
def test_a_rich_message_post_answer_is_judged_the_same(status: int, body: Any, ambiguous: bool) -> None:
    """The Gateway's message with attachments or cards is the same post."""
    with responses.RequestsMock() as rsps:
        answer(rsps, f"{URLS['chat-gateway-v1']}/c-1/messages", status, body)
        with pytest.raises(ContactCenterError) as raised:
            client_for("chat-gateway-v1").send_rich_message("c-1", RichMessage("user", "hi", ["att-1"], []))
    assert raised.value.ambiguous is ambiguous


@pytest.mark.parametrize("status", [502, 503, 504, 500])
def test_other_calls_answered_by_an_edge_stay_unambiguous(status: int) -> None:
    """Only creates and message posts make something a retry could make twice; nobody reads ambiguity elsewhere,
    and a typing indicator is not counted as a duplicate message."""
    with responses.RequestsMock() as rsps:
        rsps.post(f"{URLS['chat-gateway-v1']}/c-1/typing", status=status)
        with pytest.raises(ContactCenterError) as raised:
            client_for("chat-gateway-v1").send_typing("c-1", "user")
    assert raised.value.ambiguous is False
