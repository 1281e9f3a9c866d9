"""Browser fixtures: the system Chromium driven by Playwright, and one local stack (with the customer chat page and
the emulator's agent desk) per module. A missing Chromium or Playwright is an error, never a skip: `.ci/run` and
`make browser` install Chromium, requirements-dev.txt installs Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.local_stack.stack import LocalStack, StackOptions
from scripts.screenshots import chromium_path, launch_chromium

try:
    from playwright.sync_api import Browser, Playwright, sync_playwright
except ImportError as error:  # pragma: no cover - a broken dev install must fail loudly
    raise ImportError(f"the browser tests need Playwright (requirements-dev.txt): {error}") from error


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    try:
        path = chromium_path()
    except FileNotFoundError as error:
        pytest.fail(str(error), pytrace=False)
    launched = launch_chromium(playwright)
    assert launched.version, f"{path} did not start"
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log = tmp_path_factory.mktemp("browser") / "functions.log"
    options = StackOptions(stack_name="casebridge-browser", log_path=log, api="chat-gateway-v1")
    with LocalStack(options).start() as running:
        yield running
    print(f"functions' logs: {log}")
