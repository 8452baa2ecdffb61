"""The dashboard over real HTTP (tests/test_browser.py drives it in Chromium):
sign-in, the incident list, an incident page whose buttons follow the viewer's
role, and the live event stream."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.conftest import API_TOKENS, Stack
from tests.test_api import open_vm_incident


async def sign_in_with_form(http: httpx.AsyncClient, token: str) -> httpx.Response:
    """As a browser does: the form first (its anti-forgery token and cookie), then the post."""
    form = await http.get("/login")
    found = re.search(r"name='csrf' value='([^']+)'", form.text)
    assert found, form.text
    return await http.post("/login", data={"token": token, "csrf": found.group(1)})


async def signed_in(stack: Stack, role: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=stack.url, timeout=30)
    answer = await sign_in_with_form(http, API_TOKENS[role])
    assert answer.status_code == 303, answer.text
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert "samesite=strict" in answer.headers["set-cookie"].lower()
    return http


async def test_dashboard_pages_follow_the_viewers_role(stack: Stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as anonymous:
        assert (await anonymous.get("/")).status_code == 303  # to /login
        incident = await open_vm_incident(stack, anonymous)
    approver = await signed_in(stack, "approver")
    viewer = await signed_in(stack, "viewer")
    try:
        home = await approver.get("/")
        assert home.status_code == 200 and f"/incidents/{incident}" in home.text
        assert "isolate (high)" in home.text and "viewport" in home.text
        page = (await approver.get(f"/incidents/{incident}")).text
        assert f"/api/incidents/{incident}/approvals/isolate/approve" in page
        assert "portal.azure.com" in page and "Timeline" in page
        seen = (await viewer.get(f"/incidents/{incident}")).text
        assert "Approval needed" in seen and "approvals/isolate/approve" not in seen

        async with approver.stream("GET", "/api/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.aiter_lines()
            got = [await asyncio.wait_for(lines.__anext__(), 10) for _ in range(3)]
        assert "event: change" in got

        # The cookie works for the API too, with the same role checks.
        approved = await approver.post(
            f"/api/incidents/{incident}/approvals/isolate/approve", json={}
        )
        assert approved.status_code == 200, approved.text
        assert (await viewer.post(f"/api/incidents/{incident}/ack", json={})).status_code == 403
    finally:
        await approver.aclose()
        await viewer.aclose()
        await stack.client.get_workflow_handle(f"incident-{incident}").terminate("test done")
