"""Cards and quick replies (models.Card): shape and size checked at the API, passed through to 8x8 unchanged;
agent cards reach AgentMessage."""
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from typing import Any

import pytest

from casebridge.business_api.models import OpenConversationRequest, PostMessageRequest, RequestInvalid, validate
from casebridge.contact_center.webhook_gateway import parse_webhook_event

ADAPTIVE: dict[str, Any] = {
    "contentType": "application/vnd.microsoft.card.adaptive",
    "content": {
        "type": "AdaptiveCard",
        "version": "1.6",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "body": [{"type": "TextBlock", "text": "Pick one"}],
    },
}
QUICK: dict[str, Any] = {
    "contentType": "application/8x8.quick.replies",
    "content": {
        "options": [
            {"title": "Order status", "data": {"postback": "order"}},
            {"title": "Agent", "data": {"postback": "agent"}},
        ]
    },
}


def test_bot_cards_pass_through_as_given() -> None:
    request = validate(PostMessageRequest, {"authorType": "bot", "text": "How can I help?", "cards": [ADAPTIVE, QUICK]})
    assert [card.wire() for card in request.cards] == [ADAPTIVE, QUICK]
    cards_only = validate(PostMessageRequest, {"authorType": "bot", "cards": [QUICK]})
    assert cards_only.text is None and cards_only.is_rich


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"authorType": "user", "cards": [QUICK]}, "only bot messages"),
        (
            {"authorType": "bot", "cards": [{**ADAPTIVE, "content": {**ADAPTIVE["content"], "version": "1.7"}}]},
            "1.0 to 1.6",
        ),
        ({"authorType": "bot", "cards": [{**ADAPTIVE, "content": {"type": "Card", "version": "1.3"}}]}, "AdaptiveCard"),
        (
            {
                "authorType": "bot",
                "cards": [{"contentType": "application/8x8.quick.replies", "content": {"options": []}}],
            },
            "1 to 13",
        ),
        (
            {
                "authorType": "bot",
                "cards": [
                    {
                        "contentType": "application/8x8.quick.replies",
                        "content": {"options": [{"title": "x", "data": {}}]},
                    }
                ],
            },
            "postback",
        ),
        ({"authorType": "bot", "cards": [{"contentType": "Carousel", "content": {}}]}, "contentType"),
        ({"authorType": "bot", "cards": [QUICK] * 6}, "at most 5 items"),
        (
            {
                "authorType": "bot",
                "cards": [
                    {
                        **ADAPTIVE,
                        "content": {**ADAPTIVE["content"], "body": [{"type": "TextBlock", "text": "x" * 29_000}]},
                    }
                ],
            },
            "28672",
        ),
        ({"authorType": "bot"}, "needs text, attachments or"),
    ],
)
def test_bad_cards_are_refused_saying_why(body: dict[str, Any], says: str) -> None:
    with pytest.raises(RequestInvalid) as raised:
        validate(PostMessageRequest, body)
    assert says in str(raised.value)


def test_history_may_carry_bot_cards_and_the_gateway_gets_them() -> None:
    from casebridge.contact_center.chat_gateway_v1 import history_item

    request = validate(
        OpenConversationRequest,
        {
            "history": [
                {"authorType": "user", "text": "hi"},
                {"authorType": "bot", "text": "Choose", "cards": [QUICK]},
                {"authorType": "bot", "cards": [ADAPTIVE]},
            ]
        },
    )
    assert [history_item(m) for m in request.history] == [
        {"authorType": "user", "text": "hi"},
        {"authorType": "bot", "text": "Choose", "cards": [QUICK]},
        {"authorType": "bot", "cards": [ADAPTIVE]},
    ]
    with pytest.raises(RequestInvalid, match="only bot messages"):
        validate(OpenConversationRequest, {"history": [{"authorType": "user", "text": "x", "cards": [QUICK]}]})
    with pytest.raises(RequestInvalid, match="needs text"):
        validate(OpenConversationRequest, {"history": [{"authorType": "bot"}]})


def test_history_cards_on_chat_api_v2_are_a_400_before_any_call(services: Any, functions: Any, fake_8x8: Any) -> None:
    from tests.support.events import api_gateway_event
    from tests.support.samples import invoke

    body = {"history": [{"authorType": "bot", "text": "Choose", "cards": [QUICK]}]}
    event = api_gateway_event(
        "POST", "/cases/{caseId}/conversation", path_parameters={"caseId": "c-cards"}, body=json.dumps(body)
    )
    answer = invoke(functions.lifecycle, event)
    assert (answer.status, answer.body["error"]["code"]) == (400, "UnsupportedByContactCenterApi"), answer.body
    assert fake_8x8.created == []


def test_agent_cards_reach_agent_message() -> None:
    event = parse_webhook_event(
        {
            "eventType": "MESSAGE",
            "conversationId": "c-1",
            "timestamp": 1,
            "data": {"sender": {"id": "agent-1", "type": "agent"}, "text": "rate us", "cards": [ADAPTIVE]},
        }
    )
    assert event.kind.value == "AgentMessage" and event.detail["cards"] == [ADAPTIVE]
