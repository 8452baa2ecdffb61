"""Free text is bounded where it enters (review #4, issue 11 item 6), on the
real stack: Azure's oversized alert is cut with a marker and accepted, never
refused (Azure would retry it forever); a person's note over its bound is a
422 naming the field; the text that comes with an action (ack and resolve
notes, decision comments) is cut, and the action happens. Nothing of the cut
text reaches workflow history."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from temporalio.client import WorkflowHandle

from stanch.client.ids import workflow_id_for
from stanch.harness.waiting import eventually
from stanch.models.free_text import DESCRIPTION_LIMIT, NOTE_LIMIT, RULE_LIMIT, bounded
from stanch.stores.page_file import read_pages
from stanch.testing.started import Started
from tests.support.alerts import unique_alert
from tests.support.plans import API_TOKENS
from tests.support.stack import Stack

# The largest single history event an incident may hold here: far below the
# 2 MiB Temporal refuses, and far below what the review sent.
EVENT_BOUND = 64 * 1024
VM_ALERT = Path(__file__).resolve().parents[2] / "examples" / "demo" / "vm-web-1-unavailable.json"


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKENS[role]}"}


async def largest_event(handle: WorkflowHandle) -> int:
    return max([e.ByteSize() async for e in handle.fetch_history_events()])


async def test_an_oversized_alert_is_cut_and_its_incident_still_pages_and_acks(
    stack: Stack, started: Started
):
    """Reproduce A of review #4: alerts with a 480 KB rule and a 480 KB
    description (961 KB bodies, under the intake's limit) wedged the incident."""
    stem = f"huge-{uuid.uuid4().hex[:6]}-"
    rule = stem + "r" * 480_000
    async with httpx.AsyncClient(timeout=60) as http:
        answers = [
            await stack.post_alert(http, unique_alert(rule=rule, description="d" * 480_000))
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [202] * 3, answers[0].text
        incident = answers[0].json()["incident_id"]
        assert {a.json()["incident_id"] for a in answers} == {incident}
        handle = stack.client.get_workflow_handle(workflow_id_for(incident))
        started.add(handle)

        async def paged() -> bool:
            return any(p.get("incident_id") == incident for p in read_pages(stack.pages))

        await eventually(paged, timeout=30)
        base = f"{stack.url}/api/incidents/{incident}"
        state = (await http.get(base, headers=auth("viewer"))).json()["state"]
        assert state["title"] == bounded(rule, RULE_LIMIT) and state["title"].startswith(stem)
        assert len(state["title"]) == RULE_LIMIT and "…[truncated 4795" in state["title"]
        ack = await http.post(f"{base}/ack", json={}, headers=auth("responder"))
        assert ack.status_code == 200 and ack.json()["status"] == "acknowledged", ack.text
        assert await largest_event(handle) < EVENT_BOUND


async def test_a_long_note_is_refused_naming_the_field_and_changes_nothing(
    stack: Stack, started: Started
):
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await stack.post_alert(http, unique_alert())
        incident = opened.json()["incident_id"]
        handle = stack.client.get_workflow_handle(workflow_id_for(incident))
        started.add(handle)
        base = f"{stack.url}/api/incidents/{incident}"
        refused = await http.post(
            f"{base}/notes", json={"text": "n" * (NOTE_LIMIT + 1)}, headers=auth("responder")
        )
        assert refused.status_code == 422 and "text" in refused.text, refused.text
        timeline = (await http.get(base, headers=auth("viewer"))).json()["timeline"]
        assert all(e["kind"] != "note" for e in timeline)
        fits = await http.post(
            f"{base}/notes", json={"text": "n" * NOTE_LIMIT}, headers=auth("responder")
        )
        assert fits.status_code == 200, fits.text


async def test_the_text_with_an_action_is_cut_and_the_action_happens(
    stack: Stack, started: Started
):
    """Reproduce B of review #4: an ack and a resolve with 1.5 MB notes wedged
    the incident at its next continue-as-new. The API's body limit now refuses
    1.5 MB outright; a note that fits the body but not the bound is cut."""
    note = "a" * 60_000
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await stack.post_alert(http, unique_alert(description="x" * 50_000))
        incident = opened.json()["incident_id"]
        handle = stack.client.get_workflow_handle(workflow_id_for(incident))
        started.add(handle)
        base = f"{stack.url}/api/incidents/{incident}"
        ack = await http.post(f"{base}/ack", json={"note": note}, headers=auth("responder"))
        assert ack.status_code == 200 and ack.json()["changed"], ack.text
        resolved = await http.post(
            f"{base}/resolve", json={"note": "r" * 60_000}, headers=auth("responder")
        )
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        timeline = (await http.get(base, headers=auth("viewer"))).json()["timeline"]
        said = [e["summary"] for e in timeline if e["kind"] in ("acknowledged", "resolved")]
        assert len(said) == 2 and all("chars]" in s for s in said), said
        assert all(len(s) < NOTE_LIMIT + 200 for s in said)
        assert await largest_event(handle) < EVENT_BOUND
        # The run the gateway started holds the alert with its description cut.
        run_id: str | None = None
        while True:
            first = stack.client.get_workflow_handle(handle.id, run_id=run_id)
            opening = (await first.fetch_history()).events[0]
            attributes = opening.workflow_execution_started_event_attributes
            run_id = attributes.continued_execution_run_id or None
            if run_id is None:
                break
        assert sum(len(p.data) for p in attributes.input.payloads) < DESCRIPTION_LIMIT + 4096


async def test_a_long_decision_comment_is_cut_and_the_approval_counts(
    stack: Stack, started: Started
):
    """The comment is cut before the gateway signs the decision, so the
    workflow's check of the signature holds and the approval goes through."""
    body = json.loads(VM_ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"comment-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        incident = (await stack.post_alert(http, body)).json()["incident_id"]
        started.add(stack.client.get_workflow_handle(workflow_id_for(incident)))
        base = f"{stack.url}/api/incidents/{incident}"

        async def waiting() -> list[dict]:
            shown = await http.get(base, headers=auth("viewer"))
            return list(shown.json()["pending_approvals"]) if shown.status_code == 200 else []

        pending = (await eventually(waiting, timeout=30))[0]
        approved = await http.post(
            f"{base}/approvals/{pending['step']}/approve",
            json={"comment": "c" * 20_000},
            headers=auth("approver"),
        )
        assert approved.status_code == 200, approved.text
        runbook = stack.client.get_workflow_handle(pending["runbook_workflow_id"])
        accepted = [
            e.workflow_execution_update_accepted_event_attributes.accepted_request.input.args
            async for e in runbook.fetch_history_events()
            if e.HasField("workflow_execution_update_accepted_event_attributes")
        ]
        sizes = [sum(len(p.data) for p in args.payloads) for args in accepted]
        assert sizes and max(sizes) < NOTE_LIMIT + 2048, sizes
