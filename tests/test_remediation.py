"""The whole path on the dev server: an alert opens an incident, the incident runs
the matching runbook, a human approves, the VM is contained; later a second
human's approval releases it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest

from cli.approvals import decide
from cli.errors import UsageError
from cli.incidents import fetch_incident, send_update
from models.incident import IncidentState, IncidentStatus, RequestRelease
from models.runbook import RunbookOutcome
from tests.conftest import NIC1, Stack

ALERT = Path(__file__).resolve().parents[1] / "examples" / "demo" / "vm-web-1-unavailable.json"


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
    async with httpx.AsyncClient() as http:
        opened = (await stack.post_alert(http, body)).json()
    incident = opened["incident_id"]

    state = await state_when(stack, incident, lambda s: bool(s.pending_approvals))
    (pending,) = state.pending_approvals
    assert (pending.step, pending.risk, pending.required) == ("isolate", "high", 1)
    assert state.status is IncidentStatus.TRIGGERED

    with pytest.raises(UsageError, match="not on the roster"):
        await decide(stack.client, incident, "isolate", "mallory", True, None)
    await decide(stack.client, incident, "isolate", "carol", True, "evidence captured, go")

    state = await state_when(stack, incident, lambda s: s.status is IncidentStatus.CONTAINED)
    assert state.runbook_result and state.runbook_result.outcome is RunbookOutcome.CONTAINED
    kinds = [e.kind for e in (await fetch_incident(stack.client, incident)).timeline]
    assert "runbook_started" in kinds and "runbook:approval_requested" in kinds
    assert "runbook:finished" in kinds
    nic = next(
        r for r in stack.sim.state.snapshot()["resources"] if r["id"].lower() == NIC1.lower()
    )
    assert nic["properties"]["networkSecurityGroup"]["id"].endswith(f"stanch-quarantine-{incident}")

    await send_update(stack.client, incident, "request_release", RequestRelease(by="carol"))
    await state_when(stack, incident, lambda s: bool(s.release and s.release.pending))
    with pytest.raises(UsageError, match="four eyes"):
        await decide(stack.client, incident, "release", "carol", True, None)
    await decide(stack.client, incident, "release", "dave", True, None)
    state = await state_when(
        stack, incident, lambda s: bool(s.release and s.release.outcome is RunbookOutcome.RELEASED)
    )
    assert state.runbook_result and state.runbook_result.applied == []
    nic = next(
        r for r in stack.sim.state.snapshot()["resources"] if r["id"].lower() == NIC1.lower()
    )
    assert not nic["properties"].get("networkSecurityGroup")
    assert stack.sim.state.locks == {}
    with pytest.raises(UsageError, match="nothing to release"):
        await send_update(stack.client, incident, "request_release", RequestRelease(by="carol"))
    await stack.client.get_workflow_handle(f"incident-{incident}").terminate("test done")
