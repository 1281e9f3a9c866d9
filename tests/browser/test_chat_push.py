"""The customer chat page on casebridge's channel WebSocket: agent messages arrive pushed, with no polling request,
and after a forced disconnect the page reconnects from its cursor and misses nothing (nor shows anything twice).
The agent writes through the emulator's control API (the scripted Alice of the support queue)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, WebSocket, expect

from scripts.local_stack.options import demo_emulator_config
from scripts.local_stack.stack import LocalStack
from tests.browser.test_chat_and_desk import PHONE, start_case
from tests.e2e.e2e_support import wait_until

expect.set_options(timeout=20_000)
# The page polled every 4 s before it had the WebSocket: a quiet window longer than that shows it no longer does.
OLD_POLL_MS = 4_500
ALICE_ANSWER = demo_emulator_config().agents[0].script.reply_text


def agent_says(stack: LocalStack, text: str) -> None:
    answer = requests.post(f"{stack.control_url}/agents/alice/reply", json={"text": text}, timeout=10)
    assert answer.status_code == 200, answer.text


@pytest.fixture(autouse=True)
def customers_leave(stack: LocalStack) -> Iterator[list[str]]:
    """Whatever a test's outcome, its customer leaves: Alice takes one case at a time, and the next test needs her."""
    opened: list[str] = []
    yield opened
    for case_id in opened:
        requests.delete(
            f"{stack.api_url}/cases/{case_id}/conversation", headers={"x-api-key": stack.api_key}, timeout=10
        )


def open_chat(browser: Browser, stack: LocalStack) -> tuple[Page, str, list[str], list[WebSocket]]:
    chat = browser.new_context(viewport=PHONE).new_page()
    requested: list[str] = []
    sockets: list[WebSocket] = []
    chat.on("request", lambda r: requested.append(f"{r.method} {r.url}") if "/api/" in r.url else None)
    # A lambda: Playwright marks its handlers, which a bound builtin method cannot carry.
    chat.on("websocket", lambda socket: sockets.append(socket))  # noqa: PLW0108
    chat.goto(stack.chat_url)
    case_id = start_case(chat, "Pat Push", "pat@example.com")
    expect(chat.locator("#state")).to_have_attribute("data-state", "with_agent")
    expect(chat.locator("li.msg.agent").first).to_contain_text("Alice")  # the scripted greeting, pushed
    # Alice answers the question once, 0.3 s after it reaches her (later under load): wait for it, so her answer
    # cannot land after a test's own agent messages and stand where the test expects the last one.
    expect(chat.locator("li.msg.agent").last).to_contain_text(ALICE_ANSWER)
    return chat, case_id, requested, sockets


def timeline_texts(stack: LocalStack, case_id: str) -> list[str]:
    answer = requests.get(f"{stack.api_url}/cases/{case_id}/events", headers={"x-api-key": stack.api_key}, timeout=10)
    return [str(e.get("text")) for e in answer.json()["events"] if e["type"] == "AgentMessage"]


def agent_texts(chat: Page) -> list[str]:
    return [re.sub(r"\s+", " ", t) for t in chat.locator("li.msg.agent .text").all_inner_texts()]


@pytest.mark.timeout(180)
def test_agent_messages_are_pushed_to_the_chat_page_with_no_polling_request(
    browser: Browser, stack: LocalStack, customers_leave: list[str]
) -> None:
    chat, case_id, requested, sockets = open_chat(browser, stack)
    customers_leave.append(case_id)
    assert [s.url.split("?")[0] for s in sockets] == [stack.socket.url]  # type: ignore[union-attr]
    assert not [r for r in requested if "/events" in r]  # the timeline came on the socket too
    requested.clear()
    for text in ("first pushed", "second pushed", "third pushed"):
        agent_says(stack, text)
        expect(chat.locator("li.msg.agent").last).to_contain_text(text)
    chat.wait_for_timeout(OLD_POLL_MS)
    # The customer reading what arrives (POST .../read, 8x8's read receipt) is no poll.
    asked = [r for r in requested if not r.startswith("POST ") or not r.endswith("/read")]
    assert asked == [], f"the page asked casebridge while only waiting for the agent: {asked}"
    pushed = ["first pushed", "second pushed", "third pushed"]
    assert [t for t in agent_texts(chat) if t in pushed] == pushed


@pytest.mark.timeout(180)
def test_after_a_forced_disconnect_the_page_resumes_from_its_cursor_and_misses_nothing(
    browser: Browser, stack: LocalStack, customers_leave: list[str]
) -> None:
    chat, case_id, requested, sockets = open_chat(browser, stack)
    customers_leave.append(case_id)
    socket = stack.socket
    assert socket is not None
    agent_says(stack, "before the drop")
    expect(chat.locator("li.msg.agent").last).to_contain_text("before the drop")
    socket.refuse_connections = True
    try:
        with sockets[-1].expect_event("close"):  # the page sees its socket drop
            socket.close_all()
        for text in ("while away one", "while away two"):
            agent_says(stack, text)
        wait_until(
            "both messages are on the case timeline while the page is away",
            lambda: {"while away one", "while away two"} <= set(timeline_texts(stack, case_id)),
        )
        assert socket.connection_ids() == []  # so they can only reach the page by its resume
    finally:
        socket.refuse_connections = False
    expect(chat.locator("li.msg.agent").last).to_contain_text("while away two")
    agent_says(stack, "after the return")
    expect(chat.locator("li.msg.agent").last).to_contain_text("after the return")
    tail = ["before the drop", "while away one", "while away two", "after the return"]
    assert [t for t in agent_texts(chat) if t in tail] == tail  # in order, nothing missed, nothing twice
    assert len(sockets) >= 2  # it reconnected
    assert not [r for r in requested if "/events" in r]
    chat.context.close()
