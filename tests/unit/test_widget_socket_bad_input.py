"""The channel WebSocket answers every frame it cannot take with a clear error frame (the REST route's status and
`{"error": {"code", "message"}}`), and refuses a handshake it cannot take with a 4xx: never a 500, never a stack
trace in the answer or the logs. Through the real channel_socket handler, on moto."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.push import tokens
from casebridge.services import set_services
from casebridge.store.codec import encode_cursor
from tests.support.aws import aws_client
from tests.support.lambdas import LambdaContext

CASE_ID = "case-widget-1"
CONNECTION_ID = "conn-widget-1"
DEEP = '{"action": "message", "text": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.fixture
def socket_services(services: Any) -> Any:
    arn = aws_client("secretsmanager").create_secret(Name="channel-token-key", SecretString="k" * 64)["ARN"]
    settings = replace(
        services.settings,
        channel_token_secret_id=arn,
        channel_socket_url="wss://socket.example/v1",
        channel_connections_url="http://127.0.0.1:9/v1",  # nothing is posted by these tests
    )
    wired = replace(services, settings=settings)
    set_services(wired)
    assert wired.store.claim_opening(CASE_ID, 1000)
    return wired


def socket_event(route: str, body: str | None = None, query: dict[str, str] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "requestContext": {"routeKey": route, "connectionId": CONNECTION_ID, "requestId": "req-1"},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    if query is not None:
        event["queryStringParameters"] = query
    return event


def good_token(services: Any) -> str:
    return tokens.issue(services.settings, CASE_ID)["token"]


def no_stack_trace(capfd: pytest.CaptureFixture[str]) -> None:
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert "Logging error" not in err  # a log line the logger could not write (it prints its own traceback)


@pytest.mark.parametrize(
    ("frame", "status", "words"),
    [
        ("not json", 400, "JSON object"),
        ("[1, 2]", 400, "JSON object"),
        ("", 400, "JSON object"),
        ('{"action": "shout", "requestId": "r"}', 400, "message, typing, resume"),
        ('{"action": 5, "requestId": "r"}', 400, "message, typing, resume"),
        ('{"action": "\\ud800", "requestId": "r"}', 400, "message, typing, resume"),
        ('{"action": "message", "requestId": "r", "text": "\\ud800"}', 400, "not valid"),
        ('{"action": "message", "requestId": "r", "text": "ok", "clientMessageId": "a\\udfffb"}', 400, "not valid"),
        ('{"action": "typing", "requestId": "r", "\\udc00": 1}', 400, "not valid"),
        ('{"action": "message", "requestId": "\\ud800", "text": "ok"}', 400, "requestId"),
        ('{"action": "message", "text": "\ud800"}', 400, "lone surrogate"),  # the text itself, not its escape
        ('{"action": "resume", "requestId": "r", "after": "\\ud800"}', 400, "cursor"),
        ('{"action": "resume", "requestId": "r", "after": "not-a-cursor"}', 400, "cursor"),
        ('{"action": "resume", "requestId": "r", "after": 7}', 400, "cursor"),
        ('{"action": "resume", "requestId": "r", "since": "x"}', 400, "only 'after'"),
        (DEEP, 400, "nested"),
        ('{"action": "message", "text": "' + "x" * 300_000 + '"}', 413, "limited"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "empty",
        "unknown-action",
        "action-not-a-string",
        "action-lone-surrogate",
        "text-lone-surrogate",
        "client-message-id-lone-surrogate",
        "key-lone-surrogate",
        "request-id-lone-surrogate",
        "frame-text-lone-surrogate",
        "after-lone-surrogate",
        "after-not-a-cursor",
        "after-not-a-string",
        "resume-unknown-field",
        "too-deep",
        "too-large",
    ],
)
def test_a_bad_frame_is_answered_with_its_4xx_error_never_a_500_or_a_stack_trace(
    functions: SimpleNamespace,
    socket_services: Any,
    capfd: pytest.CaptureFixture[str],
    frame: str,
    status: int,
    words: str,
) -> None:
    handler = functions.channel_socket.lambda_handler
    connected = handler(socket_event("$connect", query={"token": good_token(socket_services)}), LambdaContext())
    assert connected == {"statusCode": 200}
    capfd.readouterr()
    result = handler(socket_event("$default", body=frame), LambdaContext())
    assert result["statusCode"] == 200  # the route response: the answer travels on the socket
    json.dumps(result["body"]).encode()  # the frame API Gateway sends back is UTF-8 text
    answer = json.loads(result["body"])
    assert answer["status"] == status, answer
    assert answer["body"]["error"]["code"] in ("InvalidRequest", "PayloadTooLarge")
    assert words in json.dumps(answer["body"]["error"], ensure_ascii=False)
    assert answer["action"] in ("", "message", "typing", "resume")  # nothing of the widget's is echoed as action
    no_stack_trace(capfd)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        (None, 401),
        ({"token": ""}, 401),
        ({"token": "not-a-token"}, 401),
        ({"token": "a.b.c"}, 401),
        ({"token": "\ud800"}, 401),
        ({"token": "x" * 20_000}, 401),
        ({"token": "GOOD", "after": "not-a-cursor"}, 400),
        ({"token": "GOOD", "after": "\ud800"}, 400),
        ({"token": "GOOD", "after": encode_cursor("EVENT#1700000000000#e1")}, 400),  # from before sequences
    ],
    ids=[
        "no-query",
        "empty-token",
        "not-a-jwt",
        "malformed-jwt",
        "lone-surrogate-token",
        "huge-token",
        "after-not-a-cursor",
        "after-lone-surrogate",
        "after-without-sequence",
    ],
)
def test_a_handshake_with_a_malformed_token_or_cursor_is_refused_with_a_4xx_and_nothing_stored(
    functions: SimpleNamespace,
    socket_services: Any,
    capfd: pytest.CaptureFixture[str],
    query: dict[str, str] | None,
    status: int,
) -> None:
    if query is not None and query.get("token") == "GOOD":
        query = {**query, "token": good_token(socket_services)}
    result = functions.channel_socket.lambda_handler(socket_event("$connect", query=query), LambdaContext())
    assert result["statusCode"] == status, result
    assert json.loads(result["body"])["error"]["message"]
    assert socket_services.store.connection_case(CONNECTION_ID) is None
    no_stack_trace(capfd)


def test_a_handshake_without_a_cursor_connects_from_the_start_of_the_timeline(
    functions: SimpleNamespace, socket_services: Any
) -> None:
    query = {"token": good_token(socket_services), "after": ""}
    assert functions.channel_socket.lambda_handler(socket_event("$connect", query=query), LambdaContext()) == {
        "statusCode": 200
    }
    connection = socket_services.store.get_connection(CASE_ID, CONNECTION_ID)
    assert connection is not None and connection.sent_seq == 0
