"""Issue 17 in the real browser: an incident page shows the comms lead's
status update (posted with the page's form) and a subscriber (added with its
Subscribe button), and a grouped incident's page shows its related alerts,
one row per VM of the correlating service. Screenshots go to test-artifacts/;
the dashboard's Content-Security-Policy must never be reported."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from playwright.async_api import Browser, Dialog, expect

from stanch.client.ids import workflow_id_for
from stanch.harness.waiting import eventually
from stanch.testing.estate import DEMO_ALERT
from tests.support.alerts import unique_alert
from tests.support.browser import ARTIFACTS, chromium, sign_in
from tests.support.plans import auth
from tests.support.stack import Stack
from tests.support.webhooks import Receiver

pytestmark = pytest.mark.browser
LIVE = 30_000  # ms: the worker answers and the page's event stream refetches


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


def lead_and_correlate(stack: Stack) -> None:
    """dave (an admin) leads communications, status changes post nothing by
    themselves (every update shown is the one posted here), and the service
    `app` groups its VMs' alerts into one incident."""
    policy = yaml.safe_load(stack.config.read_text())
    for person in policy["roster"]:
        if person["id"] == "dave":
            person["roles"] = [*person.get("roles", []), "comms"]
    policy["communications"] = {"automatic_updates": False}
    policy["services"] = [
        *policy.get("services", []),
        {
            "name": "app",
            "escalation_policy": "default",
            "match": {"resource_groups": ["rg-app"]},
            "correlate": {"by": "service", "window": "15m"},
        },
    ]
    stack.config.write_text(yaml.safe_dump(policy))


def app_alert(rule: str, vm: str) -> dict[str, Any]:
    target = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-app/"
        f"providers/Microsoft.Compute/virtualMachines/{vm}"
    )
    return unique_alert(
        rule=rule, alert_id=f"{rule}-{vm}", alertTargetIDs=[target], configurationItems=[vm]
    )


async def test_the_page_shows_a_posted_update_and_a_new_subscriber(
    stack: Stack, browser: Browser, receiver: Receiver
):
    ARTIFACTS.mkdir(exist_ok=True)
    lead_and_correlate(stack)
    violations: list[str] = []
    body = json.loads(DEMO_ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"comms-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        incident = (await stack.post_alert(http, body)).json()["incident_id"]
        await communications_ready(stack, http, incident)
    page = await sign_in(browser, stack, "admin", violations)
    try:
        await page.goto(f"{stack.url}/incidents/{incident}")
        form = page.locator("section.comms form")
        await expect(form).to_be_visible()
        await expect(page.locator("p.subscribers")).to_contain_text("nobody yet")

        hook = f"webhook:{receiver.url}/status"
        page.once("dialog", lambda dialog: _answer(dialog, hook))
        await page.locator("p.subscribers button", has_text="Subscribe").click()
        await expect(page.locator("#answer")).to_have_text("done", timeout=LIVE)

        text = f"Storage is degraded; next update at the hour ({uuid.uuid4().hex[:4]})"
        await form.locator("textarea[name=text]").fill(text)
        await form.locator("input[name=internal]").fill("root cause: leaked key")
        await form.locator("button").click()
        await expect(page.locator("#answer")).to_have_text("asked", timeout=LIVE)

        # No reload: the update grows the timeline, the event stream refetches the page's part.
        update = page.locator("ol.updates li", has_text=text)
        await expect(update).to_have_count(1, timeout=LIVE)
        await expect(update).to_contain_text("dave")
        await expect(update).not_to_contain_text("leaked key")  # the internal note stays inside
        subscribers = page.locator("p.subscribers")
        await expect(subscribers).to_contain_text("webhook:127.0.0.1/…")
        await expect(subscribers).not_to_contain_text(receiver.url)  # never the URL itself

        # The subscriber gets it, and the page counts the delivery once it is recorded.
        async with httpx.AsyncClient(timeout=30) as http:
            await eventually(lambda: _delivered(stack, http, incident), 30, "the delivery")
        assert sum(text in json.dumps(r) for r in receiver.received) == 1
        await page.reload()
        await expect(page.locator("ol.updates li", has_text=text)).to_contain_text("sent to 1")
        await page.screenshot(path=ARTIFACTS / "dashboard-communications.png", full_page=True)
    finally:
        await page.context.close()
        await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
    assert violations == [], "the dashboard breaks its own Content-Security-Policy"


async def communications_ready(stack: Stack, http: httpx.AsyncClient, incident: str) -> None:
    """The page draws the post form once the incident's communications exist."""

    async def ready() -> bool:
        got = await http.get(
            f"{stack.url}/api/incidents/{incident}/updates", headers=auth("viewer")
        )
        return got.status_code == 200 and bool(got.json()["ready"])

    await eventually(ready, 30, "the incident's communications")


async def _delivered(stack: Stack, http: httpx.AsyncClient, incident: str) -> bool:
    got = await http.get(f"{stack.url}/api/incidents/{incident}/updates", headers=auth("viewer"))
    return [u["delivered"] for u in got.json()["updates"]] == [1]


async def _answer(dialog: Dialog, channel: str) -> None:
    await dialog.accept(channel)


async def test_a_grouped_incident_page_lists_its_related_alerts(stack: Stack, browser: Browser):
    ARTIFACTS.mkdir(exist_ok=True)
    lead_and_correlate(stack)
    violations: list[str] = []
    rule = f"heartbeat-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        sent = [await stack.post_alert(http, app_alert(rule, vm)) for vm in ("vm-a1", "vm-a2")]
    assert [r.status_code for r in sent] == [202, 202], [r.text for r in sent]
    incidents = {r.json()["incident_id"] for r in sent}
    assert len(incidents) == 1, incidents
    (incident,) = incidents
    assert incident.startswith("grp-")
    page = await sign_in(browser, stack, "viewer", violations)
    try:
        await page.goto(f"{stack.url}/incidents/{incident}")
        related = page.locator("#related-alerts")
        await expect(related.locator("h2")).to_have_text(
            "Related alerts (2, 2 firing)", timeout=LIVE
        )
        for vm in ("vm-a1", "vm-a2"):
            row = related.locator("tr", has_text=vm)
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text(rule)
            await expect(row).to_contain_text("firing")
        # The timeline names the second VM's alert as related; the first opened the incident.
        await expect(page.locator("td", has_text="Related: Alert fired")).to_contain_text("vm-a2")
        await expect(page.locator("td", has_text="Paging tier 1")).to_have_count(1)
        await page.screenshot(path=ARTIFACTS / "dashboard-related-alerts.png", full_page=True)
    finally:
        await page.context.close()
        await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
    assert violations == [], "the dashboard breaks its own Content-Security-Policy"
