"""What casebridge tells the customer around a hand-off, on the chat page: the wait estimate while queued, delivery
ticks (8x8 took it, the agent read it) and the customer's own reads ("Seen" at the desk), the bot's thinking at the
desk, the idle warning when the customer goes quiet with an agent, and the hand
back to the bot when the agent ends with a wrap-up code. The agent is Alice at her desk; the emulator sends read
receipts and its customer-idle signal here (settings). Every assertion is on what a page shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from scripts.local_stack.stack import LocalStack
from tests.browser.test_chat_and_desk import PHONE, open_desk, say, start_case

expect.set_options(timeout=20_000)


@pytest.fixture
def settings(stack: LocalStack) -> Iterator[dict[str, Any]]:
    """The emulator settings this test changes, put back after it (the stack serves the whole module)."""
    engine = stack.emulator.engine
    before = engine.settings()
    yield before
    engine.update_settings({k: before[k] for k in ("gatewayReadReceipts", "customerIdleSeconds")})


@pytest.mark.timeout(300)
def test_wait_ticks_idle_and_hand_back_on_the_chat_page(
    browser: Browser, stack: LocalStack, settings: dict[str, Any]
) -> None:
    engine = stack.emulator.engine
    engine.update_settings({"gatewayReadReceipts": True})
    alice = open_desk(browser, stack, "alice")
    chat = browser.new_context(viewport=PHONE).new_page()
    chat.goto(stack.chat_url)
    case_id = start_case(chat, "Wanda Wait", "wanda@example.com")
    expect(chat.locator("#state")).to_have_attribute("data-state", "queued")

    # while queued: the timer sweep's WaitUpdate puts the figures in the state line and the transcript
    stack.run_schedules()
    expect(chat.locator("#messages [data-event=WaitUpdate]")).to_contain_text("Still waiting: ")
    expect(chat.locator("#state")).to_contain_text(
        re.compile(r"Queued · Support · wait (less than a minute|about \d+ min)")
    )

    # 8x8 took the question (MessageDelivered): one tick
    question = chat.locator("li.msg.me").last
    expect(question.locator("[data-tick]")).to_have_attribute("data-tick", "delivered")

    # Alice takes it and reads it at her desk (8x8's read receipt, MessageRead): two ticks
    alice.get_by_role("button", name="Accept Wanda Wait").click()
    expect(chat.locator("#state")).to_have_attribute("data-state", "with_agent")
    expect(question.locator("[data-tick]")).to_have_attribute("data-tick", "read")
    expect(question.locator("[data-tick]")).to_have_text(" ✓✓")

    # Alice answers; the page shows it, so the customer read it (8x8's read receipt): "Seen" at her desk
    say(alice, "#reply-text", "I have your order here")
    expect(chat.locator("li.msg.agent").last).to_contain_text("I have your order here")
    expect(alice.locator("#transcript li.msg.agent").last.locator(".seen")).to_have_text(" · Seen")

    # the bot is working on something (POST /cases/{id}/typing {"kind": "thinking"}): the desk shows it
    thinking = stack.session().post(f"{stack.api_url}/cases/{case_id}/typing", json={"kind": "thinking"}, timeout=15)
    assert thinking.status_code == 204, thinking.text
    expect(alice.locator("#customer-typing")).to_contain_text("Bot is thinking…")

    # the customer goes quiet with an agent (8x8's idle): the page warns until the customer writes
    engine.update_settings({"customerIdleSeconds": 1})
    say(chat, "#text", "Let me find the receipt")
    expect(chat.locator("#idle-warning")).to_be_visible()
    expect(chat.locator("#messages [data-event=CustomerIdle]")).to_be_visible()
    engine.update_settings({"customerIdleSeconds": 0})
    say(chat, "#text", "Found it")
    expect(chat.locator("#idle-warning")).to_be_hidden()

    # Alice ends with a wrap-up code: the customer is back with the assistant
    alice.locator("#wrap-up").select_option(label="Resolved")
    alice.get_by_role("button", name="End interaction").click()
    expect(chat.locator("#messages [data-event=HandedBack]")).to_have_text(
        "The agent finished: you are back with the assistant"
    )
