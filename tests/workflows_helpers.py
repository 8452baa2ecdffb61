"""Starting incidents the way the gateway does (the client room's
signal-with-start), for workflow tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from stanch.client.alerts import open_incident as signal_with_start
from stanch.models.alert import AlertEvent, MonitorCondition
from stanch.models.severity import Severity


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

    # The time-skipping server has no search attributes: the incident goes unlisted.
    handle = await signal_with_start(
        client, task_queue, incident_id, [alert or alert_event()], listed=False
    )
    STARTED.append(handle)
    return handle


async def exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def pages(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
