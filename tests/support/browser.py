"""Debian's headless Chromium driven by Playwright, and a dashboard page
signed in as one of the test policy's roles: shared by the browser tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from tests.support.plans import API_TOKENS
from tests.support.stack import Stack

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Chromium on a closed network: no background calls home, no sandbox as root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is needed: `make test` and .ci/run install it (apt)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=found, headless=True, args=FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def sign_in(
    browser: Browser, stack: Stack, role: str, violations: list[str], **context: Any
) -> Page:
    """A page signed in as `role`. What the browser says about the
    Content-Security-Policy goes to `violations`: any refusal is a script or
    style the dashboard needs that the policy blocks."""
    page = await (await browser.new_context(**context)).new_page()
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    await page.goto(f"{stack.url}/login")
    await page.fill("input[name=token]", API_TOKENS[role])
    await page.click("form button")
    await page.wait_for_url(f"{stack.url}/")
    return page
