"""The dashboard over real HTTP (tests/gateway/test_browser.py drives it in Chromium):
sign-in, the incident list, an incident page whose buttons follow the viewer's
role, and the live event stream."""

from __future__ import annotations

import asyncio

import httpx

from stanch.client.ids import workflow_id_for
from tests.support.oncall import open_vm_incident, sign_in_with_form
from tests.support.plans import API_TOKENS
from tests.support.stack import Stack


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
        await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")


async def test_an_incident_nobody_serves_holds_up_no_dashboard(stack: Stack):
    """Its workers all gone (here: none ever polled its task queue), an
    incident cannot answer queries; the listing every dashboard shares goes on
    without it, and its own page says why instead of hanging."""
    import uuid

    from stanch.models.incident import IncidentInput
    from stanch.workflows.incident import IncidentWorkflow
    from tests.support.incidents import alert_event

    orphan = f"orphan{uuid.uuid4().hex[:12]}"
    handle = await stack.client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(incident_id=orphan, first_alert=alert_event()),
        id=workflow_id_for(orphan),
        task_queue=f"nobody-listens-{orphan}",
    )
    viewer = await signed_in(stack, "viewer")
    # The listing and response times wait at most 2 s for each incident that is
    # silent (there were 30 s per query and per viewer before).
    viewer.timeout = httpx.Timeout(15)
    try:
        home = await viewer.get("/")
        assert home.status_code == 200 and orphan not in home.text
        listed = await viewer.get("/api/incidents")
        assert orphan in listed.text, "the API listing (search attributes) still shows it"
        page = await viewer.get(f"/api/incidents/{orphan}", timeout=15)  # waits 10 s
        assert page.status_code == 503, page.text
        assert "did not answer" in page.json()["message"]
    finally:
        await viewer.aclose()
        await handle.terminate("test done")
