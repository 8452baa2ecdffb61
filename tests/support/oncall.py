"""On-call people at the real stack's front door: an incident waiting for
their approval, and signing in to the dashboard as a browser does."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from stanch.harness.waiting import eventually
from stanch.testing.estate import DEMO_ALERT
from tests.support.plans import auth
from tests.support.stack import Stack


async def open_vm_incident(stack: Stack, http: httpx.AsyncClient) -> str:
    """vm-web-1's incident, once quarantine_vm waits for an approval."""
    body = json.loads(DEMO_ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"api-{uuid.uuid4().hex[:6]}"
    incident: str = (await stack.post_alert(http, body)).json()["incident_id"]

    async def pending() -> bool:
        detail = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
        return detail.status_code == 200 and bool(detail.json()["pending_approvals"])

    await eventually(pending, 20, f"an approval pending on {incident}")
    return incident


async def sign_in_with_form(http: httpx.AsyncClient, token: str) -> httpx.Response:
    """As a browser does: the form first (its anti-forgery token and cookie), then the post."""
    form = await http.get("/login")
    found = re.search(r"name='csrf' value='([^']+)'", form.text)
    assert found, form.text
    return await http.post("/login", data={"token": token, "csrf": found.group(1)})
