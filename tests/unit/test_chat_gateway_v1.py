"""casebridge.contact_center.chat_gateway_v1 (and http): Chat Gateway v1 calls against a `responses` stand-in."""

from __future__ import annotations

import io
import json
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from casebridge.business_api.models import Customer, HistoryMessage, Routing
from casebridge.contact_center import http
from casebridge.contact_center.base import ContactCenterClient, NewConversation, RichMessage
from casebridge.contact_center.chat_gateway_v1 import ChatGatewayV1Client, fiql_value, user_body
from casebridge.errors import (
    ConfigurationError,
    ContactCenterError,
    ContactCenterMisconfigured,
    ContactCenterRejected,
    ContactCenterUnavailable,
    InvalidRequest,
)
from tests.support.samples import NETWORK_FAILURES, TimeoutRecorder, crm_customer

BASE = "https://api.8x8.test"
GW = f"{BASE}/chat-gateway/v1"
CONV = f"{GW}/conversations"
HEADERS = {"x-api-key": "key-1", "X-8x8-Tenant": "acme-tenant", "Accept": "application/hal+json, application/json"}
PROBLEM = {"content_type": "application/problem+json"}


@pytest.fixture
def mock_8x8() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def client() -> ChatGatewayV1Client:
    return ChatGatewayV1Client(BASE, "acme-tenant", lambda: "key-1", timeout=2.0)


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


def assert_gateway_headers(call: Any) -> None:
    for name, value in HEADERS.items():
        assert call.request.headers[name] == value, name
    assert "Authorization" not in call.request.headers


# ---- every operation: exact request, parsed answer ----


def test_create_conversation_sends_user_assignment_and_history(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.post(
        CONV,
        status=202,
        json={"conversationId": "9jIczlQm7mbIVzgpIp-Oxze83Oo", "createdAt": "2026-01-01T00:00:00Z"},
        content_type="application/hal+json",
    )
    customer = crm_customer()
    history = [HistoryMessage(author_type="bot", text="Hello"), HistoryMessage(author_type="user", text="Grüße ✓")]
    conversation = NewConversation("25", "case-9", customer, history, Routing(type="script", id="s-7"))
    conversation_id = client.create_conversation(conversation)
    assert conversation_id == "9jIczlQm7mbIVzgpIp-Oxze83Oo"
    assert_gateway_headers(route.calls[0])
    assert route.calls[0].request.headers["Content-Type"] == "application/json"
    assert sent_json(route.calls[0]) == {
        "channelId": "25",
        "user": {
            "name": "Ann",
            "userId": "crm-42",
            "email": "ann@example.com",
            "phone": "+44 20 7946 0000",
            "company": "Acme",
            "caseId": "case-9",
            "language": "de",
            "additionalProperties": [{"key": "plan", "value": "gold"}, {"key": "tier", "value": "2"}],
        },
        "assignment": {"type": "script", "id": "s-7"},
        "history": {"messages": [{"authorType": "bot", "text": "Hello"}, {"authorType": "user", "text": "Grüße ✓"}]},
    }


def test_create_conversation_minimal_omits_empty_parts(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.post(CONV, status=202, json={"conversationId": 12345})
    assert client.create_conversation(NewConversation("25", "case-1", Customer(), [])) == "12345"
    assert sent_json(route.calls[0]) == {"channelId": "25", "user": {"caseId": "case-1"}}


@pytest.mark.parametrize(
    "answer", [{"json": {}}, {"body": "accepted"}, {"json": ["c"]}, {"json": {"conversationId": True}}]
)
def test_create_answer_without_an_id_is_an_ambiguous_error(
    mock_8x8: Any, client: ChatGatewayV1Client, answer: dict[str, Any]
) -> None:
    mock_8x8.post(CONV, status=202, **answer)
    with pytest.raises(ContactCenterError, match="no conversationId") as raised:
        client.create_conversation(NewConversation("25", "case-1", Customer(), []))
    assert (raised.value.ambiguous, raised.value.status_code) == (True, 502)


def test_send_message(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.post(
        f"{CONV}/c-1/messages",
        status=202,
        match=[matchers.json_params_matcher({"authorType": "user", "text": "Any news?"}, strict_match=True)],
    )
    client.send_message("c-1", "Any news?", "user")
    assert route.call_count == 1
    assert_gateway_headers(route.calls[0])


def test_send_rich_message_with_attachments_and_cards(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.post(f"{CONV}/c-1/messages", status=202)
    card = {"contentType": "application/8x8.quick.replies", "content": {"options": [{"title": "one"}]}}
    client.send_rich_message("c-1", RichMessage("bot", None, ["att-1", "att-2"], [card]))
    assert sent_json(route.calls[0]) == {
        "authorType": "bot",
        "attachments": [{"id": "att-1"}, {"id": "att-2"}],
        "cards": [card],
    }
    client.send_rich_message("c-1", RichMessage("user", "see this", ["att-3"]))
    assert sent_json(route.calls[1]) == {"authorType": "user", "text": "see this", "attachments": [{"id": "att-3"}]}


def test_send_rich_message_needs_some_content(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    with pytest.raises(InvalidRequest):
        client.send_rich_message("c-1", RichMessage("user", None, [], []))
    assert len(mock_8x8.calls) == 0


@pytest.mark.parametrize("body", [b"\x89PNG\r\n", io.BytesIO(b"\x89PNG\r\n")])
def test_upload_attachment_is_multipart(mock_8x8: Any, client: ChatGatewayV1Client, body: Any) -> None:
    route = mock_8x8.post(
        f"{CONV}/c-1/attachments",
        json={"id": "att-9", "filename": "shot.png", "sizeInBytes": 6, "createdAt": "2026-01-01T00:00:00Z"},
        content_type="application/hal+json",
    )
    assert client.upload_attachment("c-1", "user", "shot.png", "image/png", body) == "att-9"
    request = route.calls[0].request
    assert_gateway_headers(route.calls[0])
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    raw = request.body if isinstance(request.body, bytes) else request.body.read()
    assert b'name="attachment"; filename="shot.png"' in raw
    assert b"Content-Type: image/png" in raw and b"\x89PNG\r\n" in raw
    assert b'name="authorType"\r\n\r\nuser' in raw


def test_upload_answer_without_an_id_is_an_error(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    mock_8x8.post(f"{CONV}/c-1/attachments", json={"filename": "x"})
    with pytest.raises(ContactCenterError, match="no id"):
        client.upload_attachment("c-1", "user", "x", "text/plain", b"x")


def test_upload_too_large_is_the_callers(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    mock_8x8.post(f"{CONV}/c-1/attachments", status=413, json={"message": "File too large"}, **PROBLEM)
    with pytest.raises(ContactCenterRejected, match="File too large"):
        client.upload_attachment("c-1", "user", "x", "text/plain", b"x")


def test_customer_leaves_patches_the_user_participant(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.patch(
        f"{CONV}/c-1/participants/user",
        status=204,
        match=[matchers.json_params_matcher({"removed": True}, strict_match=True)],
    )
    client.customer_leaves("c-1")
    assert route.call_count == 1
    assert_gateway_headers(route.calls[0])


def test_customer_leaves_tolerates_404(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.patch(
        f"{CONV}/c-1/participants/user", status=404, json={"message": "Not found", "errors": ["gone"]}, **PROBLEM
    )
    client.customer_leaves("c-1")
    assert route.call_count == 1


def test_customer_leaves_other_errors_raise(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    mock_8x8.patch(f"{CONV}/c-1/participants/user", status=500)
    with pytest.raises(ContactCenterUnavailable):
        client.customer_leaves("c-1")


def test_route_patches_the_assignment(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.patch(
        f"{CONV}/c-1",
        status=202,
        json={"id": "c-1", "channelId": "25", "state": "active", "assignment": {"type": "queue", "id": "q-2"}},
        match=[matchers.json_params_matcher({"assignment": {"type": "queue", "id": "q-2"}}, strict_match=True)],
    )
    client.route("c-1", Routing(type="queue", id="q-2"))
    assert route.call_count == 1
    assert_gateway_headers(route.calls[0])


def test_update_customer_patches_the_user(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.patch(f"{CONV}/c-1", status=202, json={})
    client.update_customer("c-1", "case-1", Customer(name="Ann", properties={"plan": "gold"}))
    assert sent_json(route.calls[0]) == {
        "user": {"name": "Ann", "caseId": "case-1", "additionalProperties": [{"key": "plan", "value": "gold"}]}
    }


def test_send_typing(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.post(
        f"{CONV}/c-1/typing",
        status=204,
        match=[matchers.json_params_matcher({"authorType": "user"}, strict_match=True)],
    )
    client.send_typing("c-1", "user")
    assert route.call_count == 1
    assert_gateway_headers(route.calls[0])


def test_conversation_ids_cannot_escape_their_path(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.post(f"{CONV}/a%2F..%2Fb/messages", status=202)
    client.send_message("a/../b", "hi", "user")
    assert route.call_count == 1


def test_the_api_key_is_read_at_every_call(mock_8x8: Any) -> None:
    keys = iter(["key-1", "key-2"])
    client = ChatGatewayV1Client(BASE, "acme-tenant", lambda: next(keys))
    route = mock_8x8.post(f"{CONV}/c-1/typing", status=204)
    client.send_typing("c-1", "user")
    client.send_typing("c-1", "user")
    assert [c.request.headers["x-api-key"] for c in route.calls] == ["key-1", "key-2"]


def test_the_client_satisfies_the_interface(client: ChatGatewayV1Client) -> None:
    typed: ContactCenterClient = client
    assert typed.api == "chat-gateway-v1"


# ---- find_conversation: FIQL filter, HAL list ----


def listed(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "_embedded": {"conversations": list(items)},
        "_links": {"self": {"href": "x"}},
        "page": {"size": 20, "number": 0, "totalElements": len(items), "totalPages": 1},
    }


def conv(conversation_id: str, case_id: str = "case-1", channel_id: str = "25") -> dict[str, Any]:
    return {"id": conversation_id, "channelId": channel_id, "state": "active", "user": {"caseId": case_id}}


def test_find_conversation_sends_an_encoded_fiql_filter(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.get(CONV, json=listed(conv("c-1")), content_type="application/hal+json")
    assert client.find_conversation("case-1", "25") == "c-1"
    request = route.calls[0].request
    assert_gateway_headers(route.calls[0])
    query = urlsplit(request.url).query
    assert query == "filter=user.caseId%3D%3Dcase-1%3BchannelId%3D%3D25", "`=` and `;` percent-encoded in the query"
    assert parse_qs(query) == {"filter": ["user.caseId==case-1;channelId==25"]}


def test_a_case_id_with_reserved_characters_cannot_widen_the_filter(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    route = mock_8x8.get(CONV, json=listed())
    assert client.find_conversation("a:b", "25") is None
    assert parse_qs(urlsplit(route.calls[0].request.url).query)["filter"] == ['user.caseId=="a:b";channelId==25']
    assert fiql_value('x",caseId==y') == '"x\\",caseId==y"'
    assert fiql_value("a\\b") == '"a\\\\b"'


def test_find_conversation_rechecks_the_filter_and_takes_the_last(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    mock_8x8.get(
        CONV,
        json=listed(
            conv("c-1"), conv("other-case", case_id="case-2"), conv("other-channel", channel_id="26"), conv("c-2")
        ),
    )
    assert client.find_conversation("case-1", "25") == "c-2"


def test_find_conversation_prefers_created_at_when_present(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    newer = {**conv("newer"), "createdAt": "2026-02-01T00:00:00Z"}
    older = {**conv("older"), "createdAt": "2026-01-01T00:00:00Z"}
    mock_8x8.get(CONV, json=listed(newer, older))
    assert client.find_conversation("case-1", "25") == "newer"


@pytest.mark.parametrize(
    "answer",
    [
        {"json": listed()},
        {"json": {"page": {"size": 20}}},  # 8x8 drops `_embedded` when the list is empty
        {"json": {"_embedded": {"conversations": "x"}}},
        {"json": {"_embedded": {"conversations": [None, {"id": "c", "user": "x"}, {"user": {"caseId": "case-1"}}]}}},
        {"json": []},
        {"body": "<html>"},
        {"status": 404, "json": {"message": "Not found", "errors": ["none"]}},
    ],
)
def test_find_conversation_none_when_nothing_matches(
    mock_8x8: Any, client: ChatGatewayV1Client, answer: dict[str, Any]
) -> None:
    mock_8x8.get(CONV, **answer)
    assert client.find_conversation("case-1", "25") is None


def test_find_conversation_outage_is_raised_not_hidden(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    mock_8x8.get(CONV, status=502)
    with pytest.raises(ContactCenterUnavailable):
        client.find_conversation("case-1", "25")


# ---- every problem+json shape → class, status, code, details ----

ERROR_CASES: list[tuple[str, str, int, Any, type[ContactCenterError], int, str | None, Any]] = [
    # (name, operation, 8x8 status, body, class, our status, upstream code, details)
    (
        "GenericExceptionPayload 400 on create: the caller's values",
        "create",
        400,
        {"message": "Invalid request", "errors": [{"code": "invalid_parameter", "message": "email is not valid"}]},
        ContactCenterRejected,
        422,
        "invalid_parameter",
        [{"code": "invalid_parameter", "message": "email is not valid"}],
    ),
    (
        "GenericExceptionPayload 400 naming the channel: our configuration",
        "create",
        400,
        {"message": "Invalid request", "errors": [{"code": "invalid_parameter", "message": "channelId 25 is unknown"}]},
        ContactCenterMisconfigured,
        500,
        "invalid_parameter",
        [{"code": "invalid_parameter", "message": "channelId 25 is unknown"}],
    ),
    (
        "UnauthorizedProblem 401: the API key",
        "send",
        401,
        {"message": "Access Denied", "errors": [{"message": "bad key", "code": "access_denied"}], "referenceId": "r-1"},
        ContactCenterMisconfigured,
        500,
        "access_denied",
        None,
    ),
    (
        "Apigee fault 401",
        "send",
        401,
        {"fault": {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}},
        ContactCenterMisconfigured,
        500,
        "oauth.v2.InvalidApiKey",
        None,
    ),
    (
        "ForbiddenViolationProblem 403, string errors: tenant mismatch",
        "send",
        403,
        {"message": "Forbidden", "errors": ["Header X-8x8-Tenant doesn't match tenant information for customerId=aa"]},
        ContactCenterMisconfigured,
        500,
        None,
        [{"message": "Header X-8x8-Tenant doesn't match tenant information for customerId=aa"}],
    ),
    (
        "ResourceNotFoundProblem 404 on create: the channel",
        "create",
        404,
        {"message": "Not found", "errors": ["Channel 25 not found"]},
        ContactCenterMisconfigured,
        500,
        None,
        [{"message": "Channel 25 not found"}],
    ),
    (
        "ResourceNotFoundProblem 404 on send: the conversation",
        "send",
        404,
        {"message": "Not found", "errors": ["Conversation c-1 not found"]},
        ContactCenterError,
        502,
        None,
        [{"message": "Conversation c-1 not found"}],
    ),
    (
        "ResourceNotFoundExceptionPayload 404 on typing",
        "typing",
        404,
        {"message": "Not found", "errors": [{"code": "resource_not_found", "message": "no conversation"}]},
        ContactCenterError,
        502,
        "resource_not_found",
        [{"code": "resource_not_found", "message": "no conversation"}],
    ),
    (
        "InvalidParameterExceptionPayload 400 on typing: not the caller's input",
        "typing",
        400,
        {
            "message": "Invalid",
            "errors": [{"code": "invalid_parameter", "message": "authorType"}],
            "referenceId": "r-2",
        },
        ContactCenterError,
        502,
        "invalid_parameter",
        [{"code": "invalid_parameter", "message": "authorType"}],
    ),
    (
        "BadRequestProblem 400, errors is an object",
        "send",
        400,
        {
            "message": "Bad request",
            "errors": {"code": "invalid_json_object", "message": "authorType has to be one of user, bot, agent"},
            "referenceId": "r-3",
        },
        ContactCenterRejected,
        422,
        "invalid_json_object",
        [{"code": "invalid_json_object", "message": "authorType has to be one of user, bot, agent"}],
    ),
    (
        "v2-style validations on a field the caller sent",
        "create",
        400,
        {"message": "x", "validations": [{"field": "user.email", "value": "a@", "code": "Email", "message": "bad"}]},
        ContactCenterRejected,
        422,
        "Email",
        [{"field": "user.email", "code": "Email", "message": "bad"}],
    ),
    (
        "v2-style validations on channelId",
        "create",
        400,
        {"message": "x", "validations": [{"field": "channelId", "code": "NotFound", "message": "unknown"}]},
        ContactCenterMisconfigured,
        500,
        "NotFound",
        [{"field": "channelId", "code": "NotFound", "message": "unknown"}],
    ),
    ("409 conflict", "route", 409, {"message": "Conflict"}, ContactCenterRejected, 422, None, None),
    ("422", "update", 422, {"message": "Unprocessable", "errors": []}, ContactCenterRejected, 422, None, None),
    (
        "500 problem",
        "send",
        500,
        {"message": "boom", "errors": [{"code": "x"}]},
        ContactCenterUnavailable,
        503,
        "x",
        None,
    ),
    ("503 html", "send", 503, "<html>busy</html>", ContactCenterUnavailable, 503, None, None),
    ("429 empty", "send", 429, None, ContactCenterUnavailable, 503, None, None),
    ("418 other", "send", 418, {"message": "teapot"}, ContactCenterError, 502, None, None),
    ("odd JSON: a list", "send", 400, ["a", 1], ContactCenterRejected, 422, None, None),
    (
        "odd JSON: nulls",
        "send",
        400,
        {"message": None, "errors": [None, 3, {"code": {}}]},
        ContactCenterRejected,
        422,
        None,
        None,
    ),
    (
        "odd JSON: fault not an object",
        "send",
        401,
        {"fault": "x", "detail": 5},
        ContactCenterMisconfigured,
        500,
        None,
        None,
    ),
]


def _invoke(client: ChatGatewayV1Client, operation: str) -> None:
    if operation == "create":
        client.create_conversation(NewConversation("25", "case-1", Customer(), []))
    elif operation == "send":
        client.send_message("c-1", "hi", "user")
    elif operation == "typing":
        client.send_typing("c-1", "user")
    elif operation == "route":
        client.route("c-1", Routing(type="queue", id="q"))
    elif operation == "update":
        client.update_customer("c-1", "case-1", Customer(name="Ann"))


URLS = {
    "create": ("POST", CONV),
    "send": ("POST", f"{CONV}/c-1/messages"),
    "typing": ("POST", f"{CONV}/c-1/typing"),
    "route": ("PATCH", f"{CONV}/c-1"),
    "update": ("PATCH", f"{CONV}/c-1"),
}


@pytest.mark.parametrize(
    ("operation", "status", "body", "error_class", "our_status", "code", "details"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_error_answers_map_to_domain_errors(
    mock_8x8: Any,
    client: ChatGatewayV1Client,
    operation: str,
    status: int,
    body: Any,
    error_class: type[ContactCenterError],
    our_status: int,
    code: str | None,
    details: Any,
) -> None:
    method, url = URLS[operation]
    if body is None:
        mock_8x8.add(method, url, status=status)
    elif isinstance(body, str):
        mock_8x8.add(method, url, status=status, body=body, content_type="text/html")
    else:
        mock_8x8.add(method, url, status=status, json=body, **PROBLEM)
    with pytest.raises(ContactCenterError) as raised:
        _invoke(client, operation)
    error = raised.value
    assert type(error) is error_class
    assert (error.status_code, error.upstream_status, error.upstream_code) == (our_status, status, code)
    assert error.retryable is (our_status == 503)
    # An edge's 502/503/504 on a create or a message post may come after 8x8 acted (test_create_answers.py).
    assert error.ambiguous is (operation in ("create", "send") and status in (502, 503, 504))
    assert error.details == details
    assert error.body()["error"]["upstream"] == {"status": status, "code": code}
    assert len(mock_8x8.calls) == 1, "the Gateway client never retries by itself"


def test_the_message_names_what_8x8_said_and_its_reference(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    mock_8x8.post(
        f"{CONV}/c-1/messages",
        status=400,
        json={
            "message": "Bad request",
            "errors": {"code": "invalid_json_object", "message": "m"},
            "referenceId": "ref-9",
        },
        **PROBLEM,
    )
    with pytest.raises(ContactCenterRejected) as raised:
        client.send_message("c-1", "hi", "user")
    assert "Bad request" in raised.value.message and "ref-9" in raised.value.message


def test_a_huge_error_message_is_cut(mock_8x8: Any, client: ChatGatewayV1Client) -> None:
    mock_8x8.post(f"{CONV}/c-1/messages", status=400, json={"message": "x" * 10_000}, **PROBLEM)
    with pytest.raises(ContactCenterRejected) as raised:
        client.send_message("c-1", "hi", "user")
    assert len(raised.value.message) < 500


# ---- Retry-After ----


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("37", 37),
        (" 5 ", 5),
        ("0", 0),
        ("²", None),  # "²".isdigit() is True
        ("\uff13", None),  # fullwidth digit three: int() would accept it
        ("1.5", None),
        ("-3", None),
        ("soon", None),
        ("", None),
        ("9999999999", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0),  # a date in the past: retry now
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP-date
        ("Mon, 32 Foo 2015 99:99:99 GMT", None),
    ],
)
def test_retry_after(mock_8x8: Any, client: ChatGatewayV1Client, header: str, expected: int | None) -> None:
    mock_8x8.post(f"{CONV}/c-1/messages", status=503, headers={"Retry-After": header})
    with pytest.raises(ContactCenterUnavailable) as raised:
        client.send_message("c-1", "hi", "user")
    assert raised.value.retry_after == expected


def test_retry_after_as_a_future_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    response = requests.Response()
    response.headers["Retry-After"] = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert http.retry_after_seconds(response, clock=now.timestamp) == 90


# ---- network failures ----


# The Chat Gateway client also names TLS failures and an answer cut off mid-body. Only a refused certificate
# (the handshake's) proves nothing was sent; tests/unit/test_contact_center_tls.py has both over real TLS.
GATEWAY_NETWORK_FAILURES: dict[str, tuple[Exception, bool]] = {
    **NETWORK_FAILURES,
    "tls-certificate-refused": (
        requests.exceptions.SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
        False,
    ),
    "tls-broken-record": (requests.exceptions.SSLError(ssl.SSLError(1, "bad record mac")), True),
    "tls-no-cause": (requests.exceptions.SSLError("certificate verify failed"), True),
    "broken-chunks": (requests.exceptions.ChunkedEncodingError("broken"), True),
}


@pytest.mark.parametrize(
    ("failure", "ambiguous"), GATEWAY_NETWORK_FAILURES.values(), ids=GATEWAY_NETWORK_FAILURES.keys()
)
def test_network_failures_are_unavailable_and_ambiguous_when_8x8_may_have_acted(
    mock_8x8: Any, client: ChatGatewayV1Client, failure: Exception, ambiguous: bool
) -> None:
    mock_8x8.post(CONV, body=failure)
    with pytest.raises(ContactCenterUnavailable) as raised:
        client.create_conversation(NewConversation("25", "case-1", Customer(), []))
    assert (raised.value.retryable, raised.value.ambiguous, raised.value.status_code) == (True, ambiguous, 503)


def test_every_call_has_a_timeout(client: ChatGatewayV1Client) -> None:
    client.session = session = TimeoutRecorder()
    seen = session.timeouts
    calls: list[Callable[[], object]] = [
        lambda: client.create_conversation(NewConversation("25", "case-1", Customer(), [])),
        lambda: client.send_message("c-1", "hi", "user"),
        lambda: client.customer_leaves("c-1"),
        lambda: client.find_conversation("case-1", "25"),
        lambda: client.send_typing("c-1", "user"),
    ]
    for call in calls:
        with pytest.raises(ContactCenterUnavailable):
            call()
    assert len(seen) == 5 and all(t == (2.0, 2.0) for t in seen)


# ---- base URL and JWK URL ----


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.8x8.com",
        "http://10.0.0.5:8080",
        "http://127.0.0.1.evil.example",
        "ftp://api.8x8.com",
        "https://",
        "",
    ],
)
def test_cleartext_or_odd_base_url_is_refused(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="8x8 base URL"):
        ChatGatewayV1Client(base_url, "acme-tenant", lambda: "k")


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8080", "http://127.9.9.9", "http://localhost:9/", "http://[::1]:8080", "HTTPS://API.8x8.com/"],
)
def test_cleartext_base_url_is_allowed_to_loopback(base_url: str) -> None:
    client = ChatGatewayV1Client(base_url, "acme-tenant", lambda: "k")
    assert client.base_url == base_url.rstrip("/")


def test_jwk_url_for_each_api() -> None:
    gateway = http.jwk_url_for("chat-gateway-v1", "https://api.8x8.com/", "eu")
    assert gateway.format(kid="k1") == "https://api.8x8.com/chat-gateway/v1/jwk/k1/public"
    v2 = http.jwk_url_for("chat-api-v2", "https://api.8x8.com", "eu")
    assert v2.format(kid="k1") == "https://api.8x8.com/vcc/eu/chat/v2/jwk/k1/public"
    with pytest.raises(ConfigurationError):
        http.jwk_url_for("chat-gateway-v1", "http://api.8x8.com", "eu")


def test_user_body_maps_customer_id_to_user_id() -> None:
    assert user_body("case-1", Customer(customer_id="crm-1", language="zh-CN")) == {
        "userId": "crm-1",
        "caseId": "case-1",
        "language": "zh-CN",
    }
