"""From a validated alert to its incident: signal-with-start, one per fingerprint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from models.alert import CommonAlert, MonitorCondition
from models.incident import IncidentInput, IncidentStatus
from models.severity import DEFAULT_SEVERITY
from workflows.incident import IncidentWorkflow, workflow_id_for
from workflows.search_attributes import INCIDENT_RESOURCES, INCIDENT_SEVERITY, INCIDENT_STATUS


class IntakeResult(BaseModel):
    incident_id: str
    workflow_id: str
    deduplicated: bool  # the alert joined an incident that was already open
    condition: MonitorCondition
    note: str | None = None


async def record_alert(client: Client, task_queue: str, alert: CommonAlert) -> IntakeResult:
    event = alert.to_event()
    incident_id = alert.fingerprint()
    workflow_id = workflow_id_for(incident_id)
    if event.condition is MonitorCondition.RESOLVED:
        # A resolution never opens an incident; it only reaches an open one.
        try:
            await client.get_workflow_handle(workflow_id).signal(IncidentWorkflow.add_alert, event)
        except RPCError as e:
            if e.status is not RPCStatusCode.NOT_FOUND:
                raise
            return IntakeResult(
                incident_id=incident_id,
                workflow_id=workflow_id,
                deduplicated=False,
                condition=event.condition,
                note="no open incident for this alert; nothing to resolve",
            )
        return IntakeResult(
            incident_id=incident_id,
            workflow_id=workflow_id,
            deduplicated=True,
            condition=event.condition,
        )
    handle = await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(incident_id=incident_id, first_alert=event),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="add_alert",
        start_signal_args=[event],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(INCIDENT_STATUS, str(IncidentStatus.TRIGGERED)),
                SearchAttributePair(INCIDENT_SEVERITY, str(event.severity or DEFAULT_SEVERITY)),
                SearchAttributePair(INCIDENT_RESOURCES, event.targets),
            ]
        ),
        memo={"title": event.rule},
        static_summary=f"{event.severity or DEFAULT_SEVERITY} {event.rule}",
    )
    return IntakeResult(
        incident_id=incident_id,
        workflow_id=workflow_id,
        deduplicated=not _started_new_run(handle),
        condition=event.condition,
    )


def _started_new_run(handle: WorkflowHandle[Any, Any]) -> bool:
    # SignalWithStartWorkflowExecutionResponse.started says whether this call
    # created the run. The SDK keeps the response but has no public accessor
    # for it yet, so read it defensively: unknown counts as "joined".
    response = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(response, "started", False))
