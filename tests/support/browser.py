"""Headless Chromium for the page tests: Debian's ``chromium`` driven by Playwright for Python.

Playwright's own browser downloads are never used (no ``playwright install``): the tests launch the system browser,
which ``scripts/test-prerequisites`` installs. One browser per test module; each test gets a fresh context (no
cookies or storage shared between tests). Screenshots go to ``test-artifacts/`` (git-ignored).

    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        with chromium() as running:
            yield running

    def test_something(browser, warden):
        page = browser.page(warden.url)
        page.goto("/logs")
        browser.screenshot(page, "logs")
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = os.environ.get("WARDEN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DEFAULT_TIMEOUT_MS = 15_000


class Browser:
    def __init__(self, playwright: Playwright, browser: PlaywrightBrowser) -> None:
        self.playwright = playwright
        self.browser = browser
        self._contexts: list[BrowserContext] = []

    def page(self, base_url: str, **context_options: object) -> Page:
        """A page in a fresh context; relative ``goto`` paths resolve against ``base_url``. Uncaught script errors
        are collected on ``page.errors``, console errors (failed loads included) on ``page.console_errors``, so tests
        can assert a page ran its scripts cleanly."""
        context = self.browser.new_context(
            base_url=base_url, viewport={"width": 1400, "height": 900}, **context_options
        )
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        self._contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        console_errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.errors = errors  # type: ignore[attr-defined]
        page.console_errors = console_errors  # type: ignore[attr-defined]
        return page

    def screenshot(self, page: Page, name: str, full_page: bool = True) -> Path:
        """Save ``test-artifacts/<name>.png`` for a human to look at (the tests assert on the DOM, not on pixels)."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
        page.screenshot(path=str(path), full_page=full_page, timeout=60_000)
        return path

    def close_contexts(self) -> None:
        for context in self._contexts:
            context.close()
        self._contexts.clear()


@contextmanager
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the page tests need Debian's chromium "
            "(apt-get install -y chromium, or run scripts/test-prerequisites)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        running = Browser(playwright, browser)
        try:
            yield running
        finally:
            running.close_contexts()
            browser.close()
