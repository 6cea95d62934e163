"""Headless Chromium (Debian's) driven by Playwright, for the widget tests.

No browser is downloaded: Playwright drives the system Chromium through
``executable_path``. A missing piece fails the test with how to install it.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL = (
    "install them with: apt-get update && apt-get install -y chromium "
    "&& pip install playwright (never `playwright install`: the tests use "
    f"the system browser at {CHROMIUM})"
)

if importlib.util.find_spec("playwright") is None:  # pragma: no cover - depends on the machine
    pytest.fail(f"Playwright for Python is missing: {INSTALL}", pytrace=False)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

__all__ = ["CHROMIUM", "Page", "Pages", "chromium", "expect", "require_chromium"]


def require_chromium() -> str:
    """The Chromium binary, or fail the test saying how to install it."""
    if not Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"Chromium is missing at {CHROMIUM}: {INSTALL}", pytrace=False)
    return CHROMIUM


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for the duration of the block."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class Pages:
    """Opens pages, each in its own browser context (its own storage, like another
    person's browser), and keeps every uncaught page error for the test to check."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.errors: list[str] = []

    async def open(self, url: str | None = None, *, width: int = 900, height: int = 700) -> Page:
        context = await self.browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        if url is not None:
            await page.goto(url)
        return page
