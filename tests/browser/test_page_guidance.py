"""What the chat page and the agent desk tell a person when something is refused or missing: errors that stay until
the person acts and say what to do, an unknown case id, no file button where files cannot work, a sign-in screen
without an empty desk under it, a desk sign-in that ends when its tab goes, and no favicon 404. Every assertion is
on what a page shows; Playwright's `expect` waits for it (bounded), nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, FilePayload, Page, Response, ViewportSize, expect

from scripts.local_stack.stack import LocalStack, StackOptions

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1200, "height": 850}
MB = 1024 * 1024

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The Chat Gateway stack, with a 1 MB file limit so a too-large file stays small."""
    log = tmp_path_factory.mktemp("browser") / "functions.log"
    options = StackOptions(
        stack_name="casebridge-browser-guidance",
        log_path=log,
        api="chat-gateway-v1",
        parameters={"AttachmentMaxBytes": str(MB)},
    )
    with LocalStack(options).start() as running:
        yield running


def goto_with_icon(page: Page, url: str) -> None:
    """Open `url`; the page's icon is its own small SVG, served (no favicon.ico 404)."""
    with page.expect_response(lambda r: "favicon" in r.url) as icon:
        page.goto(url)
    assert (icon.value.status, icon.value.url.rsplit("/", 1)[-1]) == (200, "favicon.svg"), icon.value.url


def start_case(chat: Page, name: str) -> str:
    expect(chat.locator("#start")).to_be_visible()
    chat.get_by_label("Your name").fill(name)
    chat.get_by_label("Your question").fill("Where is my parcel?")
    chat.get_by_role("button", name="Start chat").click()
    expect(chat.locator("#chat")).to_be_visible()
    return chat.locator("#case-label").inner_text()


def is_refresh(response: Response) -> bool:
    """The page's refresh of its case (GET /api/cases/{id}: the state badge)."""
    return response.request.method == "GET" and response.url.rsplit("/", 2)[-2] == "cases"


def refresh(chat: Page, stack: LocalStack) -> None:
    """Make the page refresh: its channel WebSocket drops, it reconnects and reads its case again (it never polls)."""
    assert stack.socket is not None
    with chat.expect_response(is_refresh):
        stack.socket.close_all()


@pytest.mark.timeout(300)
def test_chat_page_errors_stay_until_the_customer_acts_and_say_the_limit(browser: Browser, stack: LocalStack) -> None:
    chat = browser.new_context(viewport=PHONE).new_page()
    goto_with_icon(chat, stack.chat_url)
    start_case(chat, "Erin Example")
    error = chat.locator("#error")
    expect(chat.locator("#attach")).to_be_visible()  # the Chat Gateway takes files

    # too long: the limit in words, the text stays in the box
    chat.locator("#text").fill("x" * 5000)
    chat.locator("#text").press("Enter")
    too_long = (
        "Your message was not sent: text must be at most 4096 characters; yours has 5000. Shorten it and send again."
    )
    expect(error).to_have_text(too_long)
    expect(chat.locator("#text")).to_have_value("x" * 5000)
    # two whole refreshes later it is still there: refreshing never clears what an action said
    for _ in range(2):
        refresh(chat, stack)
    expect(error).to_have_text(too_long)
    # the customer acts: the error goes
    chat.locator("#text").fill("shorter")
    expect(error).to_be_hidden()

    # a refused file type: the types this chat takes
    exe: FilePayload = {"name": "setup.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ" + b"\0" * 64}
    chat.locator("#file").set_input_files(files=[exe])
    chat.get_by_role("button", name="Send").click()
    expect(error).to_contain_text("“setup.exe” was not sent: this chat accepts only ")
    expect(error).to_contain_text("image/png")
    expect(error).to_contain_text("Choose another file.")
    refresh(chat, stack)
    expect(error).to_contain_text("“setup.exe” was not sent")

    # a file over the size limit: the limit in megabytes
    big: FilePayload = {"name": "scan.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"\0" * (2 * MB)}
    chat.locator("#file").set_input_files(files=[big])
    expect(error).to_be_hidden()  # choosing a file is acting
    chat.get_by_role("button", name="Send").click()
    expect(error).to_have_text("“scan.png” (2 MB) was not sent: files may be at most 1 MB. Choose a smaller file.")
    refresh(chat, stack)
    expect(error).to_contain_text("files may be at most 1 MB")


@pytest.mark.timeout(300)
def test_coming_back_to_an_unknown_case_says_it_does_not_exist(browser: Browser, stack: LocalStack) -> None:
    chat = browser.new_context(viewport=PHONE).new_page()
    chat.goto(stack.chat_url)
    chat.get_by_label("Come back to a case").fill("no-such-case")
    chat.get_by_role("button", name="Open").click()
    expect(chat.locator("#error")).to_have_text("There is no case “no-such-case”. Check the id, or start a new chat.")
    # no chat opens: there is nowhere to write a message that would open a nameless case
    expect(chat.locator("#chat")).to_be_hidden()
    expect(chat.locator("#start")).to_be_visible()

    # a link to a case that is gone says so too
    chat.goto(f"{stack.chat_url}?case=gone-case")
    expect(chat.locator("#error")).to_have_text("Case “gone-case” no longer exists. Start a new chat.")
    expect(chat.locator("#chat")).to_be_hidden()


@pytest.mark.timeout(300)
def test_the_desk_sign_in_screen_is_alone_and_a_sign_in_ends_when_its_tab_goes(
    browser: Browser, stack: LocalStack
) -> None:
    engine = stack.emulator.engine
    before = engine.settings()["deskSignInTtl"]
    engine.update_settings({"deskSignInTtl": 3})
    try:
        signin = browser.new_context(viewport=DESKTOP).new_page()
        goto_with_icon(signin, stack.desk_url)
        expect(signin.get_by_role("button", name="Alice (Support) — queues support")).to_be_visible()
        expect(signin.locator("#desk")).to_be_hidden()

        # Bob signs in (his queue is empty: Alice's script may be busy with the other tests' cases)
        bob = browser.new_context(viewport=DESKTOP).new_page()
        bob.goto(f"{stack.desk_url}?agent=bob")
        expect(bob.locator("#agent-state")).to_have_text("free")
        at_desk = signin.get_by_role("button", name="Bob (Billing) — queues billing (signed in elsewhere)")
        expect(at_desk).to_be_visible()
        # the heartbeat keeps the sign-in while the tab lives, over two TTLs
        for _ in range(7):
            with bob.expect_response(lambda r: r.url.endswith("/desk/api/agents/bob/signin")):
                pass
        expect(at_desk).to_be_visible()
        # the tab goes: the sign-in ends, Bob's script serves his queue again
        bob.context.close()
        expect(signin.get_by_role("button", name="Bob (Billing) — queues billing", exact=True)).to_be_visible()
        assert engine.agents["bob"].mode == "script"
    finally:
        engine.update_settings({"deskSignInTtl": before})


@pytest.fixture(scope="module")
def v2_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log = tmp_path_factory.mktemp("browser-v2") / "functions.log"
    options = StackOptions(stack_name="casebridge-browser-v2", log_path=log, api="chat-api-v2")
    with LocalStack(options).start() as running:
        yield running


@pytest.mark.timeout(300)
def test_chat_api_v2_offers_no_file_button(browser: Browser, v2_stack: LocalStack) -> None:
    chat = browser.new_context(viewport=PHONE).new_page()
    goto_with_icon(chat, v2_stack.chat_url)
    start_case(chat, "Vera Two")
    expect(chat.locator("#messages")).to_contain_text("Where is my parcel?")
    expect(chat.locator("#attach")).to_be_hidden()
    expect(chat.get_by_text("Attach file")).to_be_hidden()
