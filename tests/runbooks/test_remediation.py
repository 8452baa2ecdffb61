"""The whole path on the dev server: an alert opens an incident, the incident runs
the matching runbook, a human approves, the VM is contained; later a second
human's approval releases it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx

from stanch.client.ids import workflow_id_for
from stanch.client.incidents import fetch_incident
from stanch.models.incident import IncidentState, IncidentStatus
from stanch.models.runbook import RunbookOutcome
from stanch.testing.estate import NIC1
from tests.support.plans import auth
from tests.support.stack import Stack

ALERT = Path(__file__).resolve().parents[2] / "examples" / "demo" / "vm-web-1-unavailable.json"


async def state_when(stack: Stack, incident: str, check, timeout: float = 30) -> IncidentState:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = (await fetch_incident(stack.client, incident)).view.state
        if check(state):
            return state
        assert asyncio.get_running_loop().time() < deadline, state.model_dump_json(indent=1)
        await asyncio.sleep(0.1)


async def test_alert_to_contained_to_released(stack: Stack):
    body = json.loads(ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"vm-down-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        opened = (await stack.post_alert(http, body)).json()
        incident = opened["incident_id"]
        base = f"{stack.url}/api/incidents/{incident}"

        state = await state_when(stack, incident, lambda s: bool(s.pending_approvals))
        (pending,) = state.pending_approvals
        assert (pending.step, pending.risk, pending.required) == ("isolate", "high", 1)
        assert state.status is IncidentStatus.TRIGGERED

        looked = await http.post(
            f"{base}/approvals/isolate/approve", json={}, headers=auth("viewer")
        )
        assert looked.status_code == 403, "a viewer may look, not approve"
        approved = await http.post(
            f"{base}/approvals/isolate/approve",
            json={"comment": "evidence captured, go"},
            headers=auth("approver"),
        )
        assert approved.status_code == 200, approved.text

        state = await state_when(stack, incident, lambda s: s.status is IncidentStatus.CONTAINED)
        assert state.runbook_result and state.runbook_result.outcome is RunbookOutcome.CONTAINED
        kinds = [e.kind for e in (await fetch_incident(stack.client, incident)).timeline]
        assert "runbook_started" in kinds and "runbook:approval_requested" in kinds
        assert "runbook:finished" in kinds
        nic = next(
            r for r in stack.sim.state.snapshot()["resources"] if r["id"].lower() == NIC1.lower()
        )
        assert nic["properties"]["networkSecurityGroup"]["id"].endswith(
            f"stanch-quarantine-{incident}"
        )

        asked = await http.post(f"{base}/release", json={}, headers=auth("approver"))
        assert asked.status_code == 200, asked.text
        await state_when(stack, incident, lambda s: bool(s.release and s.release.pending))
        own = await http.post(
            f"{base}/approvals/release/approve", json={}, headers=auth("approver")
        )
        assert own.status_code == 409 and "four eyes" in own.json()["message"], own.text
        second = await http.post(
            f"{base}/approvals/release/approve", json={}, headers=auth("admin")
        )
        assert second.status_code == 200, second.text
        state = await state_when(
            stack,
            incident,
            # The release's view and its result are separate reports: wait for
            # the one that empties what automation applied, not only the first.
            lambda s: bool(
                s.release
                and s.release.outcome is RunbookOutcome.RELEASED
                and s.runbook_result
                and s.runbook_result.applied == []
            ),
        )
        assert state.runbook_result and state.runbook_result.applied == []
        nic = next(
            r for r in stack.sim.state.snapshot()["resources"] if r["id"].lower() == NIC1.lower()
        )
        assert not nic["properties"].get("networkSecurityGroup")
        assert stack.sim.state.locks == {}
        again = await http.post(f"{base}/release", json={}, headers=auth("approver"))
        assert again.status_code == 409 and "nothing to release" in again.json()["message"]
    await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
