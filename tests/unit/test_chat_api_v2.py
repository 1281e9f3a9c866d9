"""casebridge.contact_center.chat_api_v2 (and http): Chat API v2 calls against a `responses` stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import responses
from responses import matchers

from casebridge.business_api.models import Customer, HistoryMessage, Routing
from casebridge.contact_center.base import ContactCenterClient, NewConversation
from casebridge.contact_center.chat_api_v2 import ChatApiV2Client, token_fetcher
from casebridge.contact_center.tokens import AccessToken, TokenProvider
from casebridge.errors import (
    ConfigurationError,
    ContactCenterError,
    ContactCenterMisconfigured,
    ContactCenterRejected,
    ContactCenterUnavailable,
    UnsupportedByContactCenterApi,
)
from tests.support.samples import NETWORK_FAILURES, TimeoutRecorder, crm_customer

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
        HistoryMessage(author_type="bot", text="Hello"),
        HistoryMessage(author_type="user", text="Grüße ✓"),
    ]
    conversation_id = client.create_conversation(NewConversation("channel-1", "case-1", Customer(name="Ada"), history))
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
    assert client.create_conversation(NewConversation("channel-1", "case-1", Customer(), [])) == "12345"
    assert json.loads(route.calls[0].request.body) == {"channelId": "channel-1", "customer": {"caseId": "case-1"}}


@pytest.mark.parametrize("answer", [{"json": {}}, {"body": "accepted"}, {"json": ["conv"]}])
def test_create_conversation_without_an_id_is_an_error(
    mock_8x8: Any, client: ChatApiV2Client, answer: dict[str, Any]
) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations", status=202, **answer)
    with pytest.raises(ContactCenterError, match="no conversationId"):
        client.create_conversation(NewConversation("channel-1", "case-1", Customer(), []))


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
    with pytest.raises(ContactCenterMisconfigured) as raised:
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


def test_retry_after_as_an_http_date_in_the_past_is_zero(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(
        f"{TENANT_PATH}/conversations/conv-1/messages",
        status=429,
        headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert raised.value.retryable is True and raised.value.retry_after == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(mock_8x8: Any, client: ChatApiV2Client, status: int) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations/conv-1/messages", status=status, body="upstream trouble")
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert raised.value.retryable is True
    assert raised.value.upstream_status == status
    assert raised.value.ambiguous is True, "no 8x8 problem body: the message may have been taken (counted)"


@pytest.mark.parametrize(
    ("body", "code", "status_code"),
    [
        (
            {
                "message": "invalid",
                "errors": [{"code": "INVALID_CHANNEL", "message": "no such channel"}],
                "validations": [{"field": "channelId", "value": "x", "code": "NotFound", "message": "?"}],
            },
            "INVALID_CHANNEL",
            500,  # the channel is the stack's configuration
        ),
        (
            {"fault": {"faultstring": "bad", "detail": {"errorcode": "steps.oauth.v2.InvalidApiKey"}}},
            "steps.oauth.v2.InvalidApiKey",
            422,
        ),
        ({"ErrorCode": "RESOURCE_MISSING", "Message": "missing"}, "RESOURCE_MISSING", 422),
        ({"message": "no code here"}, None, 422),
        ("plain text", None, 422),
    ],
)
def test_400_is_not_retryable_and_carries_the_upstream_code(
    mock_8x8: Any, client: ChatApiV2Client, body: Any, code: str | None, status_code: int
) -> None:
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    mock_8x8.post(f"{TENANT_PATH}/conversations", status=400, **kwargs)
    with pytest.raises(ContactCenterError) as raised:
        client.create_conversation(NewConversation("channel-1", "c", Customer(), []))
    error = raised.value
    assert (error.retryable, error.upstream_status, error.upstream_code) == (False, 400, code)
    assert error.status_code == status_code
    assert error.body()["error"]["upstream"] == {"status": 400, "code": code}


@pytest.mark.parametrize(("failure", "ambiguous"), NETWORK_FAILURES.values(), ids=NETWORK_FAILURES.keys())
def test_network_failures_are_retryable_and_ambiguous_when_8x8_may_have_acted(
    mock_8x8: Any, client: ChatApiV2Client, failure: Exception, ambiguous: bool
) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations/conv-1/messages", body=failure)
    with pytest.raises(ContactCenterError) as raised:
        client.send_message("conv-1", "hi", "user")
    assert (raised.value.retryable, raised.value.ambiguous) == (True, ambiguous)


def test_every_call_has_a_timeout(client: ChatApiV2Client) -> None:
    client.session = session = TimeoutRecorder()
    seen = session.timeouts
    client.tokens = TokenProvider("acme-tenant", lambda: AccessToken("t", 2**62))
    with pytest.raises(ContactCenterError):
        client.send_message("conv-1", "hi", "user")
    assert seen and all(t is not None for t in seen)


# ---- the business API mapped onto v2, and what v2 cannot do ----


def test_customer_is_one_flat_object_with_case_id_standard_fields_and_properties(
    mock_8x8: Any, client: ChatApiV2Client
) -> None:
    route = mock_8x8.post(f"{TENANT_PATH}/conversations", status=202, json={"conversationId": "conv-1"})
    customer = crm_customer()
    client.create_conversation(NewConversation("channel-1", "case-9", customer, []))
    assert json.loads(route.calls[0].request.body)["customer"] == {
        "caseId": "case-9",
        "name": "Ann",
        "email": "ann@example.com",
        "phone": "+44 20 7946 0000",
        "customerId": "crm-42",
        "company": "Acme",
        "language": "de",
        "plan": "gold",
        "tier": "2",
    }
    assert client.api == "chat-api-v2"


def test_routing_and_gateway_only_operations_are_refused_before_any_call(
    mock_8x8: Any, client: ChatApiV2Client
) -> None:
    routing = Routing(type="queue", id="q-1")
    calls: list[Callable[[], object]] = [
        lambda: client.create_conversation(NewConversation("channel-1", "case-1", Customer(), [], routing)),
        lambda: client.route("conv-1", routing),
        lambda: client.update_customer("conv-1", "case-1", Customer(name="Ann")),
        lambda: client.send_typing("conv-1", "user"),
    ]
    for call in calls:
        with pytest.raises(UnsupportedByContactCenterApi) as raised:
            call()
        assert raised.value.status_code == 400
        assert "chat-gateway-v1" in raised.value.message
    assert len(mock_8x8.calls) == 0
    with pytest.raises(UnsupportedByContactCenterApi, match="Chat API v2 cannot route a conversation"):
        calls[0]()


def test_find_conversation_filters_by_case_and_channel_and_takes_the_newest(
    mock_8x8: Any, client: ChatApiV2Client
) -> None:
    listed = {
        "data": [
            {
                "id": "old",
                "channelId": "channel-1",
                "customer": {"caseId": "case-1"},
                "startTime": "2024-01-01T00:00:00Z",
            },
            {"id": "other-case", "channelId": "channel-1", "customer": {"caseId": "case-2"}},
            {"id": "other-channel", "channelId": "channel-2", "customer": {"caseId": "case-1"}},
            {
                "id": "new",
                "channelId": "channel-1",
                "customer": {"caseId": "case-1"},
                "startTime": "2024-03-01T00:00:00Z",
            },
            "garbage",
        ],
        "page": {"pageSize": 20},
    }
    route = mock_8x8.get(f"{TENANT_PATH}/conversations", json=listed)
    assert client.find_conversation("case-1", "channel-1") == "new"
    sent = route.calls[0].request
    assert sent.params == {"customer.caseId": "case-1", "channel-id": "channel-1", "order": "desc"}
    assert sent.headers["Authorization"] == "Bearer token-1"


@pytest.mark.parametrize(
    "answer",
    [
        {"json": {"data": []}},
        {"json": {"data": [{"id": "x", "channelId": "channel-1", "customer": {"caseId": "case-2"}}]}},
        {"json": {"data": "nope"}},
        {"json": ["conv"]},
        {"body": "<html>"},
        {"status": 404, "json": {"message": "none"}},
    ],
)
def test_find_conversation_none_when_nothing_matches(
    mock_8x8: Any, client: ChatApiV2Client, answer: dict[str, Any]
) -> None:
    mock_8x8.get(f"{TENANT_PATH}/conversations", **answer)
    assert client.find_conversation("case-1", "channel-1") is None


def test_find_conversation_outage_is_raised_not_hidden(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.get(f"{TENANT_PATH}/conversations", status=503)
    with pytest.raises(ContactCenterUnavailable):
        client.find_conversation("case-1", "channel-1")


@pytest.mark.parametrize("status", [400, 401, 403])
def test_token_endpoint_refusing_the_credentials_is_misconfiguration(
    mock_8x8: Any, client: ChatApiV2Client, status: int
) -> None:
    mock_8x8.replace(responses.POST, TOKEN_URL, status=status, json={"error": "invalid_client"})
    with pytest.raises(ContactCenterMisconfigured) as raised:
        client.send_message("conv-1", "hi", "user")
    assert (raised.value.status_code, raised.value.upstream_status) == (500, status)


@pytest.mark.parametrize("expires_in", ["²", "3600s", "-5", ""])
def test_token_lifetime_must_be_ascii_digits(mock_8x8: Any, client: ChatApiV2Client, expires_in: str) -> None:
    mock_8x8.replace(responses.POST, TOKEN_URL, json={"access_token": "t", "expires_in": expires_in})
    with pytest.raises(ContactCenterError, match="not understood"):
        client.send_message("conv-1", "hi", "user")


def test_create_answer_without_an_id_is_ambiguous(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations", status=202, json={"conversationId": ""})
    with pytest.raises(ContactCenterError) as raised:
        client.create_conversation(NewConversation("channel-1", "case-1", Customer(), []))
    assert raised.value.ambiguous is True


def test_404_on_create_is_an_unknown_channel(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(f"{TENANT_PATH}/conversations", status=404, json={"message": "Not found"})
    with pytest.raises(ContactCenterMisconfigured):
        client.create_conversation(NewConversation("channel-1", "case-1", Customer(), []))


def test_validation_messages_reach_the_caller_without_the_refused_value(mock_8x8: Any, client: ChatApiV2Client) -> None:
    mock_8x8.post(
        f"{TENANT_PATH}/conversations",
        status=400,
        json={
            "message": "Validation failed",
            "errors": [{"code": "VALIDATION", "message": "invalid request"}],
            "validations": [{"field": "customer.email", "value": "secret@x", "code": "Email", "message": "bad email"}],
        },
    )
    with pytest.raises(ContactCenterRejected) as raised:
        client.create_conversation(NewConversation("channel-1", "case-1", Customer(), []))
    assert raised.value.status_code == 422
    assert raised.value.details == [
        {"code": "VALIDATION", "message": "invalid request"},
        {"field": "customer.email", "code": "Email", "message": "bad email"},
    ]
    assert "secret@x" not in json.dumps(raised.value.body())


@pytest.mark.parametrize("base_url", ["http://api.8x8.com", "ftp://api.8x8.com", "https://", "api.8x8.com"])
def test_cleartext_or_odd_base_url_is_refused(base_url: str) -> None:
    tokens = TokenProvider("acme-tenant", lambda: AccessToken("t", 2**62))
    with pytest.raises(ConfigurationError, match="8x8 base URL"):
        ChatApiV2Client(base_url, "eu", "acme-tenant", tokens)
    with pytest.raises(ConfigurationError):
        token_fetcher(base_url, lambda: ("k", "s"))


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8080", "http://localhost:9/", "http://[::1]:8080"])
def test_cleartext_base_url_is_allowed_to_loopback(base_url: str) -> None:
    tokens = TokenProvider("acme-tenant", lambda: AccessToken("t", 2**62))
    client = ChatApiV2Client(base_url, "eu", "acme-tenant", tokens)
    assert client.tenant_path.startswith(base_url.rstrip("/") + "/vcc/eu/")


def test_conversation_ids_cannot_escape_their_path(mock_8x8: Any, client: ChatApiV2Client) -> None:
    route = mock_8x8.post(f"{TENANT_PATH}/conversations/a%2F..%2Fb/messages", status=202)
    client.send_message("a/../b", "hi", "user")
    assert route.call_count == 1


def test_the_client_satisfies_the_interface(client: ChatApiV2Client) -> None:
    typed: ContactCenterClient = client
    assert typed.api == "chat-api-v2"
