"""A case carried through casebridge by two browser tabs and nothing else: the customer chat page of the local stack
(the business's channel over the real business API) and the emulator's agent desk (agents Alice and Bob, each in
a tab). Every assertion is on what a page shows; Playwright's `expect` waits for it (bounded), nothing sleeps."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import Browser, FilePayload, Page, ViewportSize, expect

from scripts.local_stack.stack import LocalStack

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1200, "height": 850}
QUESTION = "I was charged twice for order 4711"
BOT_HISTORY = "bot: Hi, I am the assistant.\nuser: A human please"

# Events cross the local API, moto, SQS pollers and the emulator's webhook: seconds, not milliseconds.
expect.set_options(timeout=20_000)


def open_desk(browser: Browser, stack: LocalStack, agent: str) -> Page:
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(f"{stack.desk_url}?agent={agent}")
    expect(page.locator("#agent-state")).to_have_text("free")
    return page


def start_case(chat: Page, name: str, email: str) -> str:
    expect(chat.locator("#start")).to_be_visible()
    chat.get_by_label("Your name").fill(name)
    chat.get_by_label("Email").fill(email)
    chat.get_by_label("Your question").fill(QUESTION)
    chat.locator("details summary").click()
    chat.locator("#history").fill(BOT_HISTORY)
    chat.get_by_role("button", name="Start chat").click()
    expect(chat.locator("#chat")).to_be_visible()
    return chat.locator("#case-label").inner_text()


def say(page: Page, box: str, text: str) -> None:
    page.locator(box).fill(text)
    page.locator(box).press("Enter")


@pytest.mark.timeout(300)
def test_a_case_through_the_chat_page_and_the_agent_desk(browser: Browser, stack: LocalStack) -> None:
    alice = open_desk(browser, stack, "alice")
    bob = open_desk(browser, stack, "bob")
    customer = browser.new_context(viewport=PHONE)
    chat = customer.new_page()
    chat.goto(stack.chat_url)

    # open: the case is queued on the channel's queue, as the connector reports it
    case_id = start_case(chat, "Jane Doe", "jane@example.com")
    expect(chat.locator("#state")).to_have_attribute("data-state", "queued")
    expect(chat.locator("#state")).to_have_text("Queued · Support")
    expect(chat.locator("#messages")).to_contain_text("Waiting in queue Support")
    # the page never holds the business API key: its helper does
    assert stack.api_key not in chat.content()
    assert stack.api_key not in requests.get(urljoin(stack.chat_url, "/static/chat.js"), timeout=10).text

    # accept: only an agent of the queue may; the desk shows the customer's data and the bot history
    waiting = alice.locator("[data-queue=support] .waiting li")
    expect(waiting).to_contain_text("Jane Doe")
    expect(waiting).to_contain_text(QUESTION)
    expect(bob.get_by_role("button", name="Accept Jane Doe")).to_be_disabled()
    alice.get_by_role("button", name="Accept Jane Doe").click()
    expect(alice.locator("#conv-title")).to_have_text("Jane Doe · Support")
    expect(alice.locator("#agent-state")).to_have_text("handling")
    expect(alice.locator("#customer-data")).to_contain_text("jane@example.com")
    expect(alice.locator("#customer-data")).to_contain_text(case_id)
    transcript = alice.locator("#transcript")
    expect(transcript).to_contain_text("Bot history")
    expect(transcript.locator("li.msg.bot")).to_have_text(re.compile("Hi, I am the assistant."))
    expect(transcript).to_contain_text(QUESTION)
    expect(chat.locator("#state")).to_have_attribute("data-state", "with_agent")
    expect(chat.locator("#state")).to_have_text("With agent · alice")
    expect(chat.locator("#messages")).to_contain_text("alice joined")

    # the agent types (AgentTyping reaches the page from the bus), then writes
    alice.locator("#reply-text").fill("Let me look at order 4711")
    expect(chat.locator("#agent-typing")).to_have_text("The agent is typing…")
    alice.locator("#reply-text").press("Enter")
    agent_said = chat.locator("li.msg.agent")
    expect(agent_said.last).to_contain_text("Let me look at order 4711")
    expect(agent_said.last).to_contain_text("alice")
    expect(chat.locator("#agent-typing")).to_have_text("")

    # the customer writes back
    say(chat, "#text", "It was on the 3rd")
    expect(transcript.locator("li.msg.user").last).to_contain_text("It was on the 3rd")
    expect(chat.locator("#messages li.msg.me").last).to_contain_text("It was on the 3rd")

    # transfer: Alice's desk empties, the customer waits in Billing, Bob accepts and sees everything
    alice.locator("#transfer-queue").select_option("billing")
    alice.get_by_role("button", name="Transfer").click()
    expect(alice.locator("#idle")).to_be_visible()
    expect(alice.locator("#last-ended")).to_have_text("Your interaction with Jane Doe ended.")
    expect(chat.locator("#messages")).to_contain_text("Transferring you to another team")
    expect(chat.locator("#messages")).to_contain_text("Waiting in queue Billing")
    bob.get_by_role("button", name="Accept Jane Doe").click()
    expect(bob.locator("#conv-title")).to_have_text("Jane Doe · Billing")
    bob_transcript = bob.locator("#transcript")
    expect(bob_transcript).to_contain_text("Hi, I am the assistant.")
    expect(bob_transcript).to_contain_text("Let me look at order 4711")
    expect(bob_transcript).to_contain_text("Interaction 1 · Support → Billing · Alice (Support) → Bob (Billing)")
    expect(chat.locator("#state")).to_have_text("With agent · bob")
    say(bob, "#reply-text", "Bob from Billing: the refund is on its way")
    expect(agent_said.last).to_contain_text("the refund is on its way")

    # the agent ends the interaction, then the customer leaves
    bob.get_by_role("button", name="End interaction").click()
    expect(bob.locator("#idle")).to_be_visible()
    expect(chat.locator("#state")).to_have_attribute("data-state", "agent_left")
    expect(chat.locator("#state")).to_have_text("Agent left · write to reopen")
    expect(chat.locator("#messages")).to_contain_text("bob left the chat")
    chat.get_by_role("button", name="Leave chat").click()
    expect(chat.locator("#state")).to_have_attribute("data-state", "closed")
    expect(chat.locator("#state")).to_have_text("Closed · write to reopen")
    expect(chat.locator("#messages")).to_contain_text("You left the chat")
    expect(chat.get_by_role("button", name="Leave chat")).to_be_disabled()

    # later, the same browser comes back: the same case with its history; writing reopens it on the same conversation
    chat.close()
    later = customer.new_page()
    later.goto(stack.chat_url)
    expect(later.locator("#case-label")).to_have_text(case_id)
    expect(later.locator("#messages")).to_contain_text("the refund is on its way")
    # the open's history is on the timeline too, shown once beside this browser's own copy
    expect(later.locator("li.msg.bot", has_text="Hi, I am the assistant.")).to_have_count(1)
    expect(later.locator("#messages")).to_contain_text("It was on the 3rd")
    expect(later.locator("#state")).to_have_attribute("data-state", "closed")
    say(later, "#text", "The refund has not arrived")
    expect(later.locator("#state")).to_have_attribute("data-state", "queued")
    returning = bob.locator("[data-queue=billing] .waiting li")
    expect(returning).to_contain_text("(returning)")
    expect(returning).to_contain_text("The refund has not arrived")
    bob.get_by_role("button", name="Accept Jane Doe").click()
    expect(bob.locator("#transcript")).to_contain_text("Interaction 1 · Support → Billing")
    expect(bob.locator("#transcript")).to_contain_text("Interaction 2 · Billing · Bob (Billing)")
    expect(bob.locator("#transcript")).to_contain_text("The refund has not arrived")
    expect(later.locator("#state")).to_have_text("With agent · bob")
    say(bob, "#reply-text", "Welcome back, Jane")
    expect(later.locator("li.msg.agent").last).to_contain_text("Welcome back, Jane")

    # and from another device, by case id: the agents' side of the story comes from the case timeline
    elsewhere = browser.new_context(viewport=PHONE).new_page()
    elsewhere.goto(stack.chat_url)
    elsewhere.get_by_label("Come back to a case").fill(case_id)
    elsewhere.get_by_role("button", name="Open").click()
    expect(elsewhere.locator("#state")).to_have_text("With agent · bob")
    expect(elsewhere.locator("#messages")).to_contain_text("Welcome back, Jane")
    expect(elsewhere.locator("#messages")).to_contain_text("Let me look at order 4711")
    expect(elsewhere.locator("li.msg.bot", has_text="Hi, I am the assistant.")).to_have_count(1)  # from the timeline

    bob.get_by_role("button", name="End interaction").click()
    expect(later.locator("#state")).to_have_attribute("data-state", "agent_left")


@pytest.mark.timeout(300)
def test_customer_typing_and_files_both_ways(browser: Browser, stack: LocalStack) -> None:
    alice = open_desk(browser, stack, "alice")
    chat = browser.new_context(viewport=PHONE).new_page()
    chat.goto(stack.chat_url)
    start_case(chat, "Max Mustermann", "max@example.com")
    alice.get_by_role("button", name="Accept Max Mustermann").click()
    expect(chat.locator("#state")).to_have_text("With agent · alice")

    # the customer types: the desk shows it
    chat.locator("#text").fill("Here is")
    expect(alice.locator("#customer-typing")).to_have_text("Max Mustermann is typing…")

    # the agent sends a file: the customer opens it through the business API
    note = b"Refund reference R-99\n"
    alice.locator("#reply-text").fill("Your refund note")
    refund: FilePayload = {"name": "refund.txt", "mimeType": "text/plain", "buffer": note}
    alice.locator("#reply-file").set_input_files(files=[refund])
    alice.get_by_role("button", name="Send").click()
    link = chat.locator("li.msg.agent a", has_text="refund.txt")
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href is not None and href.startswith("/api/cases/"), href
    assert chat.request.get(urljoin(stack.chat_url, href)).body() == note

    # the customer sends a file: the agent opens it at the desk
    receipt = b"order 4711, charged twice\n"
    receipt_file: FilePayload = {"name": "receipt.txt", "mimeType": "text/plain", "buffer": receipt}
    chat.locator("#file").set_input_files(files=[receipt_file])
    chat.locator("#text").fill("Here is my receipt")
    chat.get_by_role("button", name="Send").click()
    expect(chat.locator("li.msg.me").last).to_contain_text("receipt.txt")
    desk_link = alice.locator("#transcript li.msg.user a", has_text="receipt.txt")
    expect(desk_link).to_be_visible()
    desk_href = desk_link.get_attribute("href")
    assert desk_href is not None
    assert alice.request.get(urljoin(stack.desk_url, desk_href)).body() == receipt
    expect(alice.locator("#transcript")).to_contain_text("Here is my receipt")

    alice.get_by_role("button", name="End interaction").click()
    chat.get_by_role("button", name="Leave chat").click()
    expect(chat.locator("#state")).to_have_attribute("data-state", "closed")
