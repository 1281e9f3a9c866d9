"""The channel samples of events/ (channel_token.json, socket_*.json) as one widget's session, through the real
channel_socket handler on moto and the Chat Gateway: each is answered as it should be, never refused. The
sample's token is a placeholder (as the webhook samples' signatures are): the test puts the one it was issued."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from casebridge.push.connections import Connections
from casebridge.services import set_services
from tests.support.aws import aws_client
from tests.support.lambdas import LambdaContext
from tests.support.samples import CASE_ID, CONVERSATION_ID, invoke, load_event, sample_webhook_event
from tests.support.signing import WebhookSigner

CONNECTION_ID = load_event("socket_connect.json")["requestContext"]["connectionId"]


@pytest.fixture
def widget_services(gateway_services: Any) -> Any:
    arn = aws_client("secretsmanager").create_secret(Name="channel-token-key", SecretString="k" * 64)["ARN"]
    settings = replace(
        gateway_services.settings,
        channel_token_secret_id=arn,
        channel_socket_url="wss://socket.example/v1",
        channel_connections_url="http://127.0.0.1:9/v1",  # @connections posts are recorded, never sent
    )
    wired = replace(gateway_services, settings=settings)
    set_services(wired)
    return wired


@pytest.fixture
def pushed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    frames: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(Connections, "post", lambda self, connection_id, frame: frames.append((connection_id, frame)))
    return frames


def socket(functions: SimpleNamespace, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = functions.channel_socket.lambda_handler(event, LambdaContext())
    return result


def action(functions: SimpleNamespace, name: str) -> dict[str, Any]:
    """A frame sample: the answer the route response sends back on the socket."""
    result = socket(functions, load_event(name))
    assert result["statusCode"] == 200, result
    answer: dict[str, Any] = json.loads(result["body"])
    return answer


def test_a_widget_session_from_the_samples(
    functions: SimpleNamespace,
    widget_services: Any,
    fake_8x8: Any,
    webhook_signer: WebhookSigner,
    pushed: list[tuple[str, dict[str, Any]]],
) -> None:
    open_event = load_event("open_conversation.json")
    # Without the sample's history (on the timeline too, sequences 2-4): ConversationOpened alone is sequence 1.
    open_event["body"] = json.dumps({k: v for k, v in json.loads(open_event["body"]).items() if k != "history"})
    opened = invoke(functions.lifecycle, open_event)
    assert opened.status == 201, opened.raw  # the case's first timeline event: sequence 1

    issued = invoke(functions.channel_socket, load_event("channel_token.json"))
    assert issued.status == 201, issued.raw
    assert set(issued.body) == {"token", "expiresAt", "url"}
    assert issued.body["url"] == f"wss://socket.example/v1?token={issued.body['token']}"

    assert socket(functions, load_event("socket_connect.json"))["statusCode"] == 401  # the placeholder token
    connect = load_event("socket_connect.json")
    connect["queryStringParameters"]["token"] = issued.body["token"]
    connect["multiValueQueryStringParameters"]["token"] = [issued.body["token"]]
    assert socket(functions, connect) == {"statusCode": 200}
    connection = widget_services.store.get_connection(CASE_ID, CONNECTION_ID)
    assert connection is not None and connection.sent_seq == 1  # the sample's `after`: sequence 1 was seen

    typing = action(functions, "socket_typing.json")
    assert (typing["action"], typing["requestId"], typing["status"]) == ("typing", "w-2", 204)
    assert fake_8x8.typing == [(CONVERSATION_ID, "user")]

    message = action(functions, "socket_message.json")
    assert (message["action"], message["requestId"], message["status"]) == ("message", "w-1", 202)
    assert message["body"]["status"] == "accepted"

    queued = sample_webhook_event("chat-gateway-v1/webhook_queued.json", webhook_signer)
    assert invoke(functions.webhook, queued).status == 200  # sequence 2, after the widget's cursor
    resumed = action(functions, "socket_resume.json")
    assert (resumed["action"], resumed["requestId"], resumed["status"]) == ("resume", "w-3", 200)
    assert resumed["body"] == {"sent": 1}
    assert [(c, f["type"], f["sequence"]) for c, f in pushed] == [(CONNECTION_ID, "Queued", 2)]

    assert socket(functions, load_event("socket_disconnect.json")) == {"statusCode": 200}
    assert widget_services.store.connection_case(CONNECTION_ID) is None
