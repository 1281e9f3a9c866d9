"""The escalation in the two pages: the customer chat page says "we're closed" with the queue's hours when nobody can
answer; the agent desk shows a queue's staffing and ends an interaction with a wrap-up code. Support is closed by
its business hours (only tomorrow's weekday is open), Billing is always open. Every assertion is on what a page
shows (Playwright's `expect` waits, bounded)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect

from scripts.local_stack.stack import LocalStack, StackOptions
from tests.browser.test_chat_and_desk import PHONE, open_desk

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Support opens only tomorrow (UTC), so it is closed whenever the test runs.
TOMORROW = DAYS[(datetime.now(UTC) + timedelta(days=1)).weekday()]
HOURS = {"queues": {"support": {"timeZone": "UTC", "weekly": {TOMORROW: [["09:00", "17:00"]]}}}}

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log = tmp_path_factory.mktemp("browser-escalation") / "functions.log"
    options = StackOptions(
        stack_name="casebridge-browser-escalation",
        log_path=log,
        api="chat-gateway-v1",
        business_hours=HOURS,
    )
    with LocalStack(options).start() as running:
        yield running


@pytest.mark.timeout(300)
def test_the_chat_page_says_we_are_closed_with_the_hours(browser: Browser, stack: LocalStack) -> None:
    chat = browser.new_context(viewport=PHONE).new_page()
    chat.goto(stack.chat_url)
    chat.get_by_label("Your name").fill("Nina Night")
    chat.get_by_label("Your question").fill("Is anyone there?")
    chat.get_by_role("button", name="Start chat").click()
    closed = chat.locator("#closed")
    expect(closed).to_be_visible()
    expect(closed).to_have_attribute("data-reason", "closed")
    expect(closed).to_contain_text("We're closed")
    expect(closed).to_contain_text("(UTC time)")
    expect(closed.locator("ul.hours li")).to_have_text([f"{TOMORROW.capitalize()} 09:00\u201317:00"])
    # Nothing was opened: the customer stays on the start form, no chat, no error.
    expect(chat.locator("#chat")).to_be_hidden()
    expect(chat.locator("#error")).to_be_hidden()
    assert stack.emulator.engine.list_conversations() == []


def case_in_billing(stack: LocalStack, case_id: str) -> str:
    """A case opened by the business on the open Billing queue (the chat page opens on the channel's queue)."""
    opened = stack.session().post(
        f"{stack.api_url}/cases/{case_id}/conversation",
        json={"customer": {"name": "Walt Wrapup"}, "routing": {"type": "queue", "id": "billing"}},
        timeout=15,
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["conversationId"])


@pytest.mark.timeout(300)
def test_the_desk_ends_with_a_wrap_up_code_and_shows_queue_staffing(browser: Browser, stack: LocalStack) -> None:
    bob = open_desk(browser, stack, "bob")
    conversation_id = case_in_billing(stack, "browser-wrap-up")
    bob.get_by_role("button", name="Accept Walt Wrapup").click()
    expect(bob.locator("#conv-title")).to_have_text("Walt Wrapup · Billing")
    codes = bob.locator("#wrap-up option")
    expect(codes).to_have_text(
        ["No wrap-up code", "Resolved", "Refund issued", "Follow-up needed", "No response from customer"]
    )
    bob.locator("#wrap-up").select_option(label="Refund issued")
    bob.get_by_role("button", name="End interaction").click()
    expect(bob.locator("#idle")).to_be_visible()
    ended = stack.emulator.engine.transcript(conversation_id)["interactions"][-1]
    assert ended["wrapUpCode"] == {"id": "2", "name": "Refund issued", "shortCode": "REF"}

    # A queue closed or without agents says so on every desk, and its conversations wait.
    stack.emulator.engine.update_settings({"queueStatus": {"billing": "empty"}})
    billing = bob.locator("[data-queue=billing]")
    expect(billing).to_have_attribute("data-status", "empty")
    expect(billing.locator("h3")).to_contain_text("no agents (all on break)")
    stack.emulator.engine.update_settings({"queueStatus": {"billing": "closed"}})
    expect(billing.locator("h3")).to_contain_text("closed (agents logged out)")
    stack.emulator.engine.update_settings({"queueStatus": {"billing": "open"}})
    expect(billing).to_have_attribute("data-status", "open")
