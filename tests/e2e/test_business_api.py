"""The business API over HTTP through the local stack: every route, and the answers to bad requests."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from scripts.local_stack.stack import LocalStack
from tests.e2e.e2e_support import Client, wait_until

pytestmark = pytest.mark.e2e


def test_open_conversation_is_201_then_200_with_the_same_conversation(client: Client, case_id: str) -> None:
    body = {
        "customer": {"name": "Jane Doe", "email": "jane@example.com", "properties": {"orderId": "A-1"}},
        "history": [{"authorType": "bot", "text": "Hi, I am the bot."}, {"authorType": "user", "text": "A human!"}],
    }
    first = client.open(case_id, body)
    assert first.status_code == 201, first.text
    conversation_id = first.json()["conversationId"]
    assert conversation_id
    again = client.open(case_id, body)
    assert again.status_code == 200, again.text
    assert again.json()["conversationId"] == conversation_id

    view = client.agent_view(conversation_id)
    assert view["customer"]["caseId"] == case_id
    assert view["customer"]["orderId"] == "A-1"
    assert [(m["authorType"], m["text"]) for m in view["transcript"] if m["history"]] == [
        ("bot", "Hi, I am the bot."),
        ("user", "A human!"),
    ]


def test_concurrent_opens_create_one_conversation(client: Client, case_id: str, stack: LocalStack) -> None:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: client.open(case_id), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["conversationId"] for a in answers}) == 1
    made = [c for c in stack.emulator.engine.conversations.values() if c.customer.get("caseId") == case_id]
    assert len(made) == 1


def test_get_case_shows_state_queue_and_agent(client: Client, opened: tuple[str, str]) -> None:
    case_id, conversation_id = opened
    case = client.case(case_id)
    assert case["caseId"] == case_id
    assert case["conversationId"] == conversation_id
    assert case["state"] == "with_agent"
    assert case["queue"] == {"id": "support", "name": "Support"}
    assert case["agent"]["id"].startswith("s")


def test_post_message_is_202_and_reaches_the_agent_in_order(client: Client, opened: tuple[str, str]) -> None:
    case_id, conversation_id = opened
    texts = [f"message {i}" for i in range(4)]
    for text in texts:
        answer = client.post(case_id, text)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "accepted"

    def delivered() -> list[str] | None:
        seen = [m["text"] for m in client.agent_view(conversation_id)["transcript"] if m["text"] in texts]
        return seen if len(seen) == len(texts) else None

    assert wait_until("all messages delivered", delivered) == texts


def test_client_message_id_makes_the_post_idempotent(client: Client, opened: tuple[str, str]) -> None:
    case_id, conversation_id = opened
    first = client.post(case_id, "only once", clientMessageId="m-1")
    second = client.post(case_id, "only once", clientMessageId="m-1")
    assert first.status_code == second.status_code == 202
    assert first.json()["messageId"] == second.json()["messageId"]
    client.post(case_id, "marker")  # FIFO: once the marker arrived, any duplicate would have too
    wait_until(
        "marker delivered",
        lambda: any(m["text"] == "marker" for m in client.agent_view(conversation_id)["transcript"]),
    )
    texts = [m["text"] for m in client.agent_view(conversation_id)["transcript"]]
    assert texts.count("only once") == 1


def test_message_to_a_case_without_conversation_opens_it(client: Client, case_id: str) -> None:
    answer = client.post(case_id, "first words")
    assert answer.status_code == 202, answer.text
    case = wait_until("conversation opened by the delivery", lambda: client.call("GET", f"/cases/{case_id}").ok)
    assert case
    conversation_id = client.case(case_id)["conversationId"]
    wait_until(
        "message delivered",
        lambda: any(m["text"] == "first words" for m in client.agent_view(conversation_id)["transcript"]),
    )


def test_events_are_paged_with_cursor_and_limit(client: Client, opened: tuple[str, str]) -> None:
    case_id, conversation_id = opened
    client.agent(client.agent_of(case_id), "reply", text="one")
    client.agent(client.agent_of(case_id), "reply", text="two")
    client.wait_event(case_id, "AgentMessage", 2)
    everything = client.timeline(case_id)
    assert len(everything) >= 5  # Queued, ConversationOpened, AgentJoined, 2 x AgentMessage

    pages, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["after"] = cursor
        answer = client.call("GET", f"/cases/{case_id}/events", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["events"]) <= 2
        if not page["events"]:
            break
        pages.append(page["events"])
        assert page["next"] and page["next"] != cursor
        cursor = page["next"]
    flattened = [e for page in pages for e in page]
    assert [e["eventId"] for e in flattened] == [e["eventId"] for e in everything]
    assert len(pages) == -(-len(everything) // 2)
    assert all(e["caseId"] == case_id and e["conversationId"] == conversation_id for e in flattened)


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1"])
def test_events_limit_out_of_range_is_400(client: Client, opened: tuple[str, str], limit: str) -> None:
    case_id, _ = opened
    answer = client.call("GET", f"/cases/{case_id}/events", params={"limit": limit})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"]


def test_customer_leaves_closes_the_case_and_frees_the_agent(
    client: Client, opened: tuple[str, str], stack: LocalStack
) -> None:
    case_id, conversation_id = opened
    agent_id = client.agent_of(case_id)
    answer = client.call("DELETE", f"/cases/{case_id}/conversation")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "closed"
    assert client.agent_view(conversation_id)["customerLeft"] is True
    client.wait_event(case_id, "CustomerLeft")
    client.wait_event(case_id, "AgentLeft", agentId=agent_id)
    assert client.case(case_id)["state"] == "closed"
    assert stack.channel is not None
    stack.channel.wait_for(case_id, "CustomerLeft")
    again = client.call("DELETE", f"/cases/{case_id}/conversation")
    assert again.status_code == 200
    assert again.json()["state"] == "closed"
    assert client.types(case_id).count("CustomerLeft") == 1


def test_writing_after_leaving_reopens_on_the_same_conversation(client: Client, opened: tuple[str, str]) -> None:
    case_id, conversation_id = opened
    assert client.call("DELETE", f"/cases/{case_id}/conversation").status_code == 200
    client.wait_event(case_id, "AgentLeft")
    assert client.post(case_id, "me again").status_code == 202
    client.wait_event(case_id, "Queued", 2)
    client.wait_event(case_id, "AgentJoined", 2)
    case = client.wait_state(case_id, "with_agent")
    assert case["conversationId"] == conversation_id
    view = client.agent_view(conversation_id)
    assert len(view["interactions"]) == 2
    assert view["interactions"][-1]["queueId"] == "support"
    assert any(m["text"] == "me again" for m in view["transcript"])
    assert {e["conversationId"] for e in client.timeline(case_id)} == {conversation_id}


# -- bad requests ---------------------------------------------------------------------------------
# (A bad case id on every route: test_local_stack_hardening.py, with encoded slashes.)
@pytest.mark.parametrize("route", ["conversation", "messages"])
def test_malformed_json_is_400(client: Client, case_id: str, route: str) -> None:
    answer = client.call(
        "POST",
        f"/cases/{case_id}/{route}",
        data=b'{"text": "unterminated',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert "JSON" in answer.json()["error"]["message"]
    assert client.call("GET", f"/cases/{case_id}").status_code == 404


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"authorType": "user"}, {"text": "x", "unknown": 1}])
def test_missing_or_invalid_text_is_400(client: Client, case_id: str, body: dict[str, object]) -> None:
    answer = client.call("POST", f"/cases/{case_id}/messages", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/events"), ("DELETE", "/conversation")])
def test_unknown_case_is_404(client: Client, method: str, suffix: str) -> None:
    answer = client.call(method, f"/cases/never-{uuid.uuid4().hex}{suffix}")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"]


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_api_key_is_403_and_reaches_no_function(stack: LocalStack, key: str | None) -> None:
    before = {f.logical_id: f.invocations for f in stack.functions.values()}
    headers = {"x-api-key": key} if key else {}
    for method, path in [("GET", "/cases/any"), ("POST", "/cases/any/conversation"), ("POST", "/cases/any/messages")]:
        answer = requests.request(method, f"{stack.api_url}{path}", headers=headers, json={"text": "x"}, timeout=10)
        assert answer.status_code == 403
        assert "Forbidden" in answer.text
    assert {f.logical_id: f.invocations for f in stack.functions.values()} == before


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("PUT", "/cases/x"), ("GET", "/cases/x/messages")])
def test_unknown_route_is_403_missing_authentication_token(client: Client, method: str, path: str) -> None:
    answer = client.call(method, path)
    assert answer.status_code == 403
    assert "Missing Authentication Token" in answer.text


def test_gateway_error_bodies_are_json(stack: LocalStack) -> None:
    answer = requests.get(f"{stack.api_url}/cases/any", timeout=10)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "INVALID_API_KEY"
