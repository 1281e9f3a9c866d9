"""Screenshots of the customer chat page and the agent desk, taken in a real browser: `python -m scripts.screenshots`.

Starts the local stack (as `make local` does, on free ports), plays a short case through both pages in headless
Chromium (the distribution's, driven by Playwright) and writes docs/img/chat-page.png, docs/img/chat-start.png and
docs/img/agent-desk.png. Re-run it after changing either page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scripts.local_stack import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

# Chromium as root on a machine without a network: no sandbox, no background calls to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The system Chromium (`$CHROMIUM` first); raises with the install command when there is none."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            raise FileNotFoundError(f"CHROMIUM={configured} does not exist")
        return configured
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        "no Chromium on PATH: the browser tests and screenshots drive the system Chromium. "
        "Install it with `apt-get install chromium` (Debian/Ubuntu; `make browser` does it as root), "
        "or point $CHROMIUM at a Chromium or Chrome binary."
    )


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


def take(out_dir: Path) -> list[Path]:
    from playwright.sync_api import FilePayload, expect, sync_playwright  # noqa: PLC0415 - a dev dependency

    from scripts.local_stack.stack import LocalStack, StackOptions  # noqa: PLC0415 - slow import

    out_dir.mkdir(parents=True, exist_ok=True)
    log = REPO_ROOT / ".local" / "screenshots-functions.log"
    written: list[Path] = []
    with LocalStack(StackOptions(stack_name="casebridge-shots", log_path=log)) as stack, sync_playwright() as pw:
        browser = launch_chromium(pw)
        desk = browser.new_context(viewport={"width": 1200, "height": 820}).new_page()
        desk.goto(f"{stack.desk_url}?agent=alice")
        expect(desk.locator("#agent-state")).to_have_text("free")
        phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        chat = phone.new_page()
        chat.goto(stack.chat_url)
        chat.fill("#name", "Jane Doe")
        chat.fill("#email", "jane@example.com")
        chat.fill("#question", "I was charged twice for my last order.")
        chat.locator("details summary").click()
        chat.fill("#history", "bot: Hi, I am the assistant. How can I help?\nuser: I need a person, please")
        path = out_dir / "chat-start.png"
        chat.screenshot(path=str(path))
        written.append(path)
        chat.click("#start-button")
        expect(chat.locator("#state")).to_have_attribute("data-state", "queued", timeout=20_000)
        desk.get_by_role("button", name="Accept Jane Doe").click()
        expect(desk.locator("#conv-title")).to_contain_text("Jane Doe")
        desk.fill("#reply-text", "Hello Jane, Alice here. I can see your chat with our assistant.")
        desk.press("#reply-text", "Enter")
        expect(chat.get_by_text("Hello Jane, Alice here.")).to_be_visible(timeout=20_000)
        chat.fill("#text", "Thank you! The order number is 4711.")
        chat.press("#text", "Enter")
        expect(desk.get_by_text("The order number is 4711.")).to_be_visible(timeout=20_000)
        desk.fill("#reply-text", "Here is what I see on our side.")
        invoice: FilePayload = {"name": "invoice-4711.txt", "mimeType": "text/plain", "buffer": b"Order 4711\n"}
        desk.locator("#reply-file").set_input_files(files=[invoice])
        desk.get_by_role("button", name="Send").click()
        expect(chat.get_by_text("invoice-4711.txt")).to_be_visible(timeout=20_000)
        desk.fill("#reply-text", "Let me check order 4711")
        expect(chat.locator("#agent-typing")).to_have_text("The agent is typing…", timeout=20_000)
        expect(chat.locator("#state")).to_have_attribute("data-state", "with_agent")
        chat.fill("#text", "It was on the 3rd")
        desk.locator("#transfer-queue").select_option("billing")
        for page, name in ((chat, "chat-page.png"), (desk, "agent-desk.png")):
            path = out_dir / name
            page.screenshot(path=str(path))
            written.append(path)
        browser.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "img", help="where the PNGs go")
    args = parser.parse_args(argv)
    for path in take(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
