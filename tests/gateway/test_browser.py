"""The dashboard in a real browser: Debian's headless Chromium, driven by
Playwright. Sign in, watch a new incident appear without reloading, approve
its pending step, and watch the status change; a screenshot of each stage is
kept in test-artifacts/ (CI keeps it as an artifact). All of it under the
dashboard's Content-Security-Policy, which the browser must never report."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, expect

from stanch.client.ids import workflow_id_for
from stanch.testing.estate import DEMO_ALERT
from tests.support.browser import ARTIFACTS, chromium, sign_in
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_new_incident_appears_live_and_is_approved_from_the_page(
    stack: Stack, browser: Browser
):
    ARTIFACTS.mkdir(exist_ok=True)
    violations: list[str] = []
    page = await sign_in(browser, stack, "approver", violations)
    await expect(page.locator("h1")).to_have_text("Open incidents")

    body = json.loads(DEMO_ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"browser-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        incident = (await stack.post_alert(http, body)).json()["incident_id"]
    # No reload: the server-sent event stream makes the page fetch the new list.
    row = page.locator(f"a[href='/incidents/{incident}']")
    await expect(row).to_be_visible(timeout=30_000)
    await expect(page.locator("tr", has=row)).to_contain_text("isolate (high)", timeout=30_000)
    await page.screenshot(path=ARTIFACTS / "dashboard-incidents.png", full_page=True)

    await row.click()
    await page.wait_for_url(f"{stack.url}/incidents/{incident}")
    approve = page.locator("button.approve")
    await expect(approve).to_be_visible(timeout=30_000)
    await expect(page.locator(".pending")).to_contain_text("isolate (high risk)")
    await approve.click()
    await expect(page.locator("#answer")).to_have_text("done", timeout=30_000)
    # The runbook goes on: isolation applied, the incident moves on, the page follows.
    await expect(page.locator("p", has_text="Status")).to_contain_text(
        "Status contained", timeout=60_000
    )
    await expect(page.locator(".pending")).to_have_count(0)
    await page.screenshot(path=ARTIFACTS / "dashboard-incident-contained.png", full_page=True)

    # A viewer on a phone: the list keeps severity, incident and status; no buttons.
    phone = await sign_in(
        browser, stack, "viewer", violations, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    link = phone.locator(f"a[href='/incidents/{incident}']")
    await expect(link).to_be_visible()
    await expect(phone.locator("tr", has=link)).to_contain_text("contained")
    await link.click()
    await expect(phone.locator("button.approve")).to_have_count(0)
    await expect(phone.locator("button", has_text="Acknowledge")).to_have_count(0)
    await phone.screenshot(path=ARTIFACTS / "dashboard-phone.png", full_page=True)
    await page.context.close()
    await phone.context.close()
    assert violations == [], "the dashboard breaks its own Content-Security-Policy"
    await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
