"""The business API answers input it cannot take with a 4xx JSON error that says what is wrong, never a 500:
bodies nested deeper than a parser recurses, text that is not Unicode (a lone surrogate escape), and a channelId
of the caller's that 8x8 does not know."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import responses

from casebridge.services import set_services
from tests.support.fakes import FakeContactCenter
from tests.support.samples import Answer, invoke, load_event, post_message, sample_api_event

BASE = "https://api.8x8.test"
TENANT_PATH = f"{BASE}/vcc/us/chat/v2/tenant/acme-tenant"


def assert_400(answer: Answer) -> dict[str, Any]:
    assert answer.status == 400, answer.raw
    assert answer.headers.get("content-type", "").startswith("application/json")
    error: dict[str, Any] = answer.body["error"]
    assert error["code"] == "InvalidRequest" and error["message"]
    assert "Traceback" not in answer.raw
    return error


# ---- bodies no parser should recurse into --------------------------------------------------------------
@pytest.mark.parametrize("route", ["messages", "conversation"])
def test_a_deeply_nested_body_is_400_not_500(
    functions: SimpleNamespace, services: Any, fifo_queues: Any, route: str
) -> None:
    raw = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"
    if route == "messages":
        answer = post_message(functions.outbound, body=raw)
    else:
        answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", body=raw))
    error = assert_400(answer)
    assert "nested" in error["message"]


def test_a_deeply_nested_widget_frame_is_refused_as_bad_input() -> None:
    """The channel WebSocket reads its frames with the same care as the REST routes' bodies."""
    from casebridge.errors import InvalidRequest  # noqa: PLC0415
    from casebridge.push.socket import parse_frame  # noqa: PLC0415

    with pytest.raises(InvalidRequest, match="nested"):
        parse_frame('{"action": "message", "text": ' + "[" * 100_000 + "]" * 100_000 + "}")


# ---- text that is not Unicode ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"text": "\ud800", "clientMessageId": "m-1"},
        {"text": "fine", "clientMessageId": "m-\udfff"},
        {"text": "a\udc00b"},
    ],
    ids=["text-with-client-message-id", "client-message-id", "text"],
)
def test_a_lone_surrogate_is_400_naming_the_field(
    functions: SimpleNamespace, services: Any, fifo_queues: Any, body: dict[str, str]
) -> None:
    """JSON allows the escape \\ud800 alone; it is no character, cannot be UTF-8 and cannot reach 8x8."""
    field = next(name for name, value in body.items() if any(0xD800 <= ord(c) <= 0xDFFF for c in value))
    raw = json.dumps(body)  # ensure_ascii: the surrogate travels as its escape, as a client would send it
    error = assert_400(post_message(functions.outbound, body=raw))
    assert [d["field"] for d in error["details"]] == [field]


def test_a_lone_surrogate_in_history_is_400_naming_the_item(
    functions: SimpleNamespace, services: Any, fake_8x8: FakeContactCenter
) -> None:
    body = {"history": [{"authorType": "bot", "text": "Hello"}, {"authorType": "user", "text": "x\ud83d"}]}
    answer = invoke(functions.lifecycle, sample_api_event("open_conversation.json", body=json.dumps(body)))
    error = assert_400(answer)
    assert [d["field"] for d in error["details"]] == ["history.1.text"]
    assert fake_8x8.created == []


# ---- the caller's channelId ------------------------------------------------------------------------------
@pytest.fixture
def real_8x8(real_services: Any) -> Iterator[Any]:
    set_services(real_services)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{BASE}/oauth/v2/token", json={"access_token": "tok", "expires_in": "3600"})
        yield rsps


def open_on_channel(functions: SimpleNamespace, channel_id: str | None) -> Answer:
    body = json.loads(load_event("open_conversation.json")["body"])
    if channel_id is not None:
        body["channelId"] = channel_id
    return invoke(functions.lifecycle, sample_api_event("open_conversation.json", body=body))


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (404, {"message": "not found"}),
        (400, {"message": "bad", "errors": [{"code": "CHANNEL_NOT_FOUND", "message": "no channel"}]}),
        (422, {"validations": [{"field": "channelId", "code": "NOT_FOUND", "message": "unknown channel"}]}),
    ],
    ids=["404", "400-channel-code", "422-channel-field"],
)
def test_an_unknown_channel_id_given_by_the_caller_is_4xx_naming_it(
    functions: SimpleNamespace, real_8x8: Any, status: int, answer: dict[str, Any]
) -> None:
    real_8x8.post(f"{TENANT_PATH}/conversations", status=status, json=answer)
    reply = open_on_channel(functions, "no-such-channel")
    assert reply.status == 422, reply.raw
    error = reply.body["error"]
    assert error["code"] == "UnknownChannel"
    assert "no-such-channel" in error["message"] and "channelId" in error["message"]
    assert error["details"][0]["field"] == "channelId"
    # the claim was released: a retry on a known channel opens
    real_8x8.replace(responses.POST, f"{TENANT_PATH}/conversations", status=202, json={"conversationId": "c-ok"})
    assert open_on_channel(functions, None).status == 201


def test_the_configured_channel_refused_is_still_a_configuration_error(
    functions: SimpleNamespace, real_8x8: Any
) -> None:
    """The stack's own channel (no channelId in the request, or the same one) is the operator's to fix: 500."""
    real_8x8.post(f"{TENANT_PATH}/conversations", status=404, json={"message": "not found"})
    for channel_id in (None, "channel-1"):
        reply = open_on_channel(functions, channel_id)
        assert reply.status == 500 and reply.body["error"]["code"] == "ContactCenterMisconfigured", reply.raw
