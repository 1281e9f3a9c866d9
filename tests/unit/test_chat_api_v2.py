"""casebridge.contact_center.chat_api_v2 (and http): Chat API v2 calls against a `responses` stand-in."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher
from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.errors import ContactCenterAuthError, ContactCenterError
from casebridge.models import HistoryMessage

BASE = "https://api.8x8.test"
TENANT_PATH = f"{BASE}/vcc/eu/chat/v2/tenant/acme-tenant"
TOKEN_URL = f"{BASE}/oauth/v2/token"


@pytest.fixture
def mock_8x8() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(TOKEN_URL, json={"access_token": "token-1", "expires_in": "3600"})
        yield rsps


@pytest.fixture
def client() -> ChatApiV2Client:
    tokens = TokenProvider("acme-tenant", token_fetcher(BASE, lambda: ("key", "secret")))
    return ChatApiV2Client(BASE, "eu", "acme-tenant", tokens, timeout=2.0)


def token_calls(rsps: Any) -> int:
    return sum(1 for c in rsps.calls if c.request.url == TOKEN_URL)


def test_create_conversation_sends_customer_and_history(mock_8x8: Any, client: ChatApiV2Client) -> None:
    route = mock_8x8.post(f"{TENANT_PATH}/conversations", status=202, json={"conversationId": "conv-1"})
    history = [
        HistoryMessage(authorType="bot", text="Hello"),
        HistoryMessage(authorType="user", text="Grüße ✓"),
    ]
    conversation_id = client.create_conversation("channel-1", {"caseId": "case-1", "name": "Ada"}, history)
    assert conversation_id == "conv-1"
    request = route.calls[0].request
    assert request.headers["Authorization"] == "Bearer token-1"
    assert json.loads(request.body) == {
        "channelId": "channel-1",
        "customer": {"caseId": "case-1", "name": "Ada"},
        "history": {"messages": [{"text": "Hello", "type": "bot"}, {"text": "Grüße ✓", "type": "user"}]},
    }
    assert "user" not in json.loads(request.body), "Chat API v2 takes `customer`, not the Gateway's `user`"


def test_create_conversation_without_history_sends_none(mock_8x8: Any, client: ChatApiV2Client) -> None:
    route = mock_8x8.post(f"{TENANT_PATH}/conversations", status=202, json={"conversationId": 12345})
    assert client.create_conversation("channel-1", {"caseId": "case-1"}, []) == "12345"
    assert json.loads(route.calls[0].request.body) == {"channelId": "channel-1", "customer": {"caseId": "case-1"}}


@pytest.mark.parametrize("answer", [{"json": {}}, {"body": "accepted"}, {"json": ["conv"]}])
def test_create_conversation_without_an_id_is_an_error(
    mock_8x8: Any, client: ChatApiV2Client, answer: dict[str, Any]
) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations", status=202, **answer)
    with pytest.raises(ContactCenterError, match="no conversationId"):
        client.create_conversation("channel-1", {"caseId": "case-1"}, [])


def test_send_message(mock_8x8: Any, client: ChatApiV2Client) -> None:
    route = mock_8x8.post(
        f"{TENANT_PATH}/conversations/conv-1/messages",
        status=202,
        match=[matchers.json_params_matcher({"text": "Any news?", "authorType": "user"})],
    )
    client.send_message("conv-1", "Any news?", "user")
    assert route.call_count == 1
    assert route.calls[0].request.headers["Authorization"] == "Bearer token-1"


def test_customer_leaves(mock_8x8: Any, client: ChatApiV2Client) -> None:
    route = mock_8x8.delete(f"{TENANT_PATH}/conversations/conv-1/participants/customer", status=204)
    client.customer_leaves("conv-1")
    assert route.call_count == 1


def test_customer_leaves_tolerates_404(mock_8x8: Any, client: ChatApiV2Client) -> None:
    route = mock_8x8.delete(
        f"{TENANT_PATH}/conversations/conv-1/participants/customer",
        status=404,
        json={"message": "not found", "errors": [{"code": "NOT_FOUND", "message": "gone"}]},
    )
    client.customer_leaves("conv-1")
    assert route.call_count == 1


def test_customer_leaves_other_errors_raise(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.delete(f"{TENANT_PATH}/conversations/conv-1/participants/customer", status=500)
    with pytest.raises(ContactCenterError) as raised:
        client.customer_leaves("conv-1")
    assert raised.value.upstream_status == 500


def test_401_refreshes_the_token_once_and_retries_once(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.replace(responses.POST, TOKEN_URL, json={"access_token": "token-1", "expires_in": "3600"})
    client.tokens.get()
    mock_8x8.replace(responses.POST, TOKEN_URL, json={"access_token": "token-2", "expires_in": "3600"})
    url = f"{TENANT_PATH}/conversations/conv-1/messages"
    mock_8x8.post(url, status=202, match=[matchers.header_matcher({"Authorization": "Bearer token-2"})])
    mock_8x8.post(url, status=401, match=[matchers.header_matcher({"Authorization": "Bearer token-1"})])
    client.send_message("conv-1", "hi", "user")
    sent = [c.request.headers["Authorization"] for c in mock_8x8.calls if c.request.url == url]
    assert sent == ["Bearer token-1", "Bearer token-2"]
    assert token_calls(mock_8x8) == 2


def test_second_401_gives_up_after_one_retry(mock_8x8: Any, client: ChatApiV2Client) -> None:
    route = mock_8x8.post(f"{TENANT_PATH}/conversations/conv-1/messages", status=401, json={"message": "no"})
    with pytest.raises(ContactCenterAuthError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert route.call_count == 2
    assert token_calls(mock_8x8) == 2
    assert raised.value.retryable is False


def test_429_with_retry_after_is_retryable_and_carries_the_delay(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(
        f"{TENANT_PATH}/conversations/conv-1/messages",
        status=429,
        headers={"Retry-After": "37"},
        json={"message": "slow down"},
    )
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    error = raised.value
    assert (error.retryable, error.retry_after, error.upstream_status) == (True, 37, 429)
    assert (error.status_code, error.code) == (503, "ContactCenterUnavailable")


def test_retry_after_as_an_http_date_is_ignored(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(
        f"{TENANT_PATH}/conversations/conv-1/messages",
        status=429,
        headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert raised.value.retryable is True and raised.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(mock_8x8: Any, client: ChatApiV2Client, status: int) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations/conv-1/messages", status=status, body="upstream trouble")
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert raised.value.retryable is True
    assert raised.value.upstream_status == status
    assert raised.value.ambiguous is False


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {
                "message": "invalid",
                "errors": [{"code": "INVALID_CHANNEL", "message": "no such channel"}],
                "validations": [{"field": "channelId", "value": "x", "code": "NotFound", "message": "?"}],
            },
            "INVALID_CHANNEL",
        ),
        (
            {"fault": {"faultstring": "bad", "detail": {"errorcode": "steps.oauth.v2.InvalidApiKey"}}},
            "steps.oauth.v2.InvalidApiKey",
        ),
        ({"ErrorCode": "RESOURCE_MISSING", "Message": "missing"}, "RESOURCE_MISSING"),
        ({"message": "no code here"}, None),
        ("plain text", None),
    ],
)
def test_400_is_not_retryable_and_carries_the_upstream_code(
    mock_8x8: Any, client: ChatApiV2Client, body: Any, code: str | None
) -> None:
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    mock_8x8.post(f"{TENANT_PATH}/conversations", status=400, **kwargs)
    with pytest.raises(ContactCenterError) as raised:
        client.create_conversation("channel-1", {"caseId": "c"}, [])
    error = raised.value
    assert (error.retryable, error.upstream_status, error.upstream_code) == (False, 400, code)
    assert error.status_code == 502
    assert error.body()["error"]["upstream"] == {"status": 400, "code": code}


def test_read_timeout_is_retryable_and_ambiguous(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations/conv-1/messages", body=requests.ReadTimeout("slow"))
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert (raised.value.retryable, raised.value.ambiguous) == (True, True)


def test_connect_timeout_is_retryable_and_not_ambiguous(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations/conv-1/messages", body=requests.ConnectTimeout("no route"))
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert (raised.value.retryable, raised.value.ambiguous) == (True, False)


def test_connection_refused_is_not_ambiguous(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(
        f"{TENANT_PATH}/conversations/conv-1/messages",
        body=requests.ConnectionError("NewConnectionError: [Errno 111] Connection refused"),
    )
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert (raised.value.retryable, raised.value.ambiguous) == (True, False)


def test_connection_dropped_mid_answer_is_ambiguous(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(
        f"{TENANT_PATH}/conversations/conv-1/messages",
        body=requests.ConnectionError("Connection aborted.', RemoteDisconnected('Remote end closed connection')"),
    )
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert (raised.value.retryable, raised.value.ambiguous) == (True, True)


def test_every_call_has_a_timeout(client: ChatApiV2Client) -> None:
    seen: list[Any] = []

    class Recorder(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            seen.append(kwargs.get("timeout"))
            raise requests.ConnectTimeout("recorded")

    client.session = Recorder()
    client.tokens = TokenProvider("acme-tenant", lambda: AccessToken("t", 2**62))
    with pytest.raises(ContactCenterError):
        client.send_message("conv-1", "hi", "user")
    assert seen and all(t is not None for t in seen)
