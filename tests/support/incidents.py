"""Incidents in tests: started the way the gateway starts them (the client
room's signal-with-start), and read the way the on-call API reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.client.alerts import open_incident as signal_with_start
from stanch.gateway.coalesce import MAX_BATCH_ITEMS
from stanch.harness.waiting import eventually
from stanch.models.alert import AlertBatch, AlertEvent, MonitorCondition
from stanch.models.incident import IncidentView, TimelineEntry
from stanch.models.settings import Settings
from stanch.models.severity import Severity
from stanch.testing.started import Started
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.incident import IncidentWorkflow


async def pile_up(incident: WorkflowHandle[Any, Any], alerts: list[AlertEvent]) -> None:
    """`alerts` signalled in the gateway's largest batches, as a storm sends them."""
    for at in range(0, len(alerts), MAX_BATCH_ITEMS):
        batch = AlertBatch(alerts=alerts[at : at + MAX_BATCH_ITEMS])
        await incident.signal(IncidentWorkflow.add_alerts, batch)


def incident_worker(env: WorkflowEnvironment, task_queue: str, config: Path) -> Worker:
    """stanch's workflows and activities in the test's process, with the
    policy `config` and its folder for state."""
    return Worker(
        env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=config.parent)),
    )


def alert_event(
    alert_id: str = "a1",
    condition: MonitorCondition = MonitorCondition.FIRED,
    severity: Severity | None = Severity.SEV2,
    rule: str = "cpu-high",
    targets: list[str] | None = None,
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        condition=condition,
        rule=rule,
        severity=severity,
        targets=targets
        or ["/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"],
    )


async def open_incident(
    started: Started,
    client: Client,
    task_queue: str,
    incident_id: str,
    alert: AlertEvent | None = None,
) -> WorkflowHandle[Any, Any]:
    # The time-skipping server has no search attributes: the incident goes unlisted.
    handle = await signal_with_start(
        client, task_queue, incident_id, [alert or alert_event()], listed=False
    )
    return started.add(handle)


async def exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def view(client: Client, workflow_id: str) -> IncidentView:
    return await client.get_workflow_handle(workflow_id).query(IncidentWorkflow.state)


async def timeline(client: Client, workflow_id: str) -> list[TimelineEntry]:
    return await client.get_workflow_handle(workflow_id).query(IncidentWorkflow.timeline)


async def settled(handle: WorkflowHandle[Any, Any], timeout: float = 20) -> None:
    """Until the workflow has nothing in flight (no workflow task, no activity):
    from then on only a message sent to it adds to its history. A test that
    counts history events around a refused message waits for this first (a
    runbook that has just reached its gate is still paging the approvers)."""

    async def quiet() -> bool:
        raw = (await handle.describe()).raw_description
        return not raw.pending_activities and not raw.HasField("pending_workflow_task")

    await eventually(quiet, timeout, f"{handle.id} settled", every=0.05)
