"""An open incident's Temporal task priority follows its severity up.

The intake starts an incident at its first alert's severity
(client/alerts.py); a Sev4 incident that a Sev1 alert joins must not keep
queueing behind a Sev4 storm. Temporal lets a running workflow's priority
change (UpdateWorkflowExecutionOptions); the tasks it schedules from then on
carry the new key. The incident's running runbooks follow (a runbook started
later inherits the incident's priority). Setting the same key twice is
harmless, so a retry is too.
"""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio import activity
from temporalio.api.common.v1 import Priority, WorkflowExecution
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionOptionsRequest
from temporalio.service import RPCError, RPCStatusCode

from stanch.models.incident import PriorityChange

# How Temporal answers for a runbook that ended before its priority changed.
_ENDED = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


@activity.defn
async def raise_incident_priority(change: PriorityChange) -> None:
    client = activity.client()
    for workflow_id in (change.workflow_id, *change.runbooks):
        try:
            await client.workflow_service.update_workflow_execution_options(
                UpdateWorkflowExecutionOptionsRequest(
                    namespace=client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                    workflow_execution_options=WorkflowExecutionOptions(
                        priority=Priority(priority_key=change.priority_key)
                    ),
                    update_mask=FieldMask(paths=["priority"]),
                )
            )
        except RPCError as e:
            # A runbook that finished meanwhile has nothing left to hurry.
            if workflow_id == change.workflow_id or e.status not in _ENDED:
                raise
