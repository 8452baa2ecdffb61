"""An incident's Temporal task priority follows its severity up (issue 15,
item 1): a Sev4 incident that a Sev1 alert joins is served ahead of a Sev4
storm from then on, as if it had opened at Sev1, and so is the runbook waiting
at its gate. On the dev server, with the worker every deployment runs."""

from __future__ import annotations

import json
import uuid

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.client.alerts import open_incident
from stanch.client.ids import workflow_id_for
from stanch.harness.waiting import eventually
from stanch.models.settings import Settings
from stanch.models.severity import Severity
from stanch.testing.estate import DEMO_ALERT
from stanch.testing.started import Started
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import alert_event, settled
from tests.support.plans import auth, policy_file
from tests.support.stack import Stack


async def _priority(handle: WorkflowHandle) -> int:
    info = (await handle.describe()).raw_description.workflow_execution_info
    return info.priority.priority_key


async def _raises(handle: WorkflowHandle) -> int:
    scheduled = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled += kind == "raise_incident_priority"
    return scheduled


async def test_a_sev4_incident_joined_by_a_sev1_alert_runs_at_sev1_priority(
    dev_env: WorkflowEnvironment, started: Started, tmp_path
):
    client, task_queue = dev_env.client, f"tq-{uuid.uuid4()}"
    config = policy_file(tmp_path)
    incident = f"rising-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=tmp_path)),
    ):
        quiet = alert_event("a-sev4", severity=Severity.SEV4)
        handle = started.add(await open_incident(client, task_queue, incident, [quiet]))
        assert await _priority(handle) == 4
        await settled(handle)
        assert await _raises(handle) == 0  # nothing to raise at the severity it opened with

        # A Sev1 alert joins (signal-with-start finds it open): its priority rises.
        await open_incident(
            client, task_queue, incident, [alert_event("b-sev1", severity=Severity.SEV1)]
        )

        async def raised() -> bool:
            return await _priority(handle) == 1

        await eventually(raised, 30, "the incident's priority raised to Sev1's")
        timeline = await handle.query(IncidentWorkflow.timeline)
        assert any(e.kind == "severity_raised" for e in timeline)

        # Another Sev1 alert, and a Sev3 one: nothing more to raise, nothing lowered.
        for alert_id, severity in (("c-sev1", Severity.SEV1), ("d-sev3", Severity.SEV3)):
            await open_incident(
                client, task_queue, incident, [alert_event(alert_id, severity=severity)]
            )
        await eventually(lambda: _counted(handle, 4), 30, "every alert counted")
        await settled(handle)
        assert await _raises(handle) == 1
        assert await _priority(handle) == 1
        await handle.terminate("test done")


async def _counted(handle: WorkflowHandle, alerts: int) -> bool:
    return (await handle.query(IncidentWorkflow.state)).state.alert_count == alerts


async def test_the_incidents_waiting_runbook_follows_it(stack: Stack):
    """Containment that waits at its gate for a Sev4 incident is hurried too
    once a Sev1 alert joins: the running runbook's priority rises with it."""
    body = json.loads(DEMO_ALERT.read_text())
    essentials = body["data"]["essentials"]
    essentials["alertRule"] = f"rising-{uuid.uuid4().hex[:6]}"
    essentials["severity"] = "Sev4"
    async with httpx.AsyncClient(timeout=30) as http:
        incident = (await stack.post_alert(http, body)).json()["incident_id"]
        base = f"{stack.url}/api/incidents/{incident}"

        async def gated() -> str | None:
            detail = (await http.get(base, headers=auth("viewer"))).json()
            return (
                detail["state"]["runbook"]["workflow_id"] if detail["pending_approvals"] else None
            )

        runbook = stack.client.get_workflow_handle(await eventually(gated, 30, "the gate"))
        handle = stack.client.get_workflow_handle(workflow_id_for(incident))
        assert await _priority(handle) == 4 and await _priority(runbook) == 4

        essentials["severity"] = "Sev1"
        essentials["alertId"] = f"{essentials['alertId']}-again"
        assert (await stack.post_alert(http, body)).status_code == 202

        async def raised() -> bool:
            return await _priority(handle) == 1 and await _priority(runbook) == 1

        await eventually(raised, 30, "the incident and its runbook at Sev1's priority")
