"""Starting incidents the way the gateway does, for workflow tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from stanch.models.alert import AlertEvent, MonitorCondition
from stanch.models.incident import IncidentInput
from stanch.models.severity import Severity
from stanch.workflows.incident import IncidentWorkflow, workflow_id_for


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
    client: Client, task_queue: str, incident_id: str, alert: AlertEvent | None = None
) -> WorkflowHandle[Any, Any]:
    from tests.conftest import STARTED

    alert = alert or alert_event()
    handle = await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(incident_id=incident_id, first_alert=alert),
        id=workflow_id_for(incident_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="add_alert",
        start_signal_args=[alert],
    )
    STARTED.append(handle)
    return handle


def pages(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
