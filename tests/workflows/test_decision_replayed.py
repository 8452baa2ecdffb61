"""One signed decision sent twice at once (the last stop's note: the handlers'
DecisionReplayed guard, workflows/signed_requests.py `spend_once`, had no
test). Both copies reach the incident before its worker runs, so they are
handed to the workflow together: the race `spend_once` guards, "two updates
carrying one proof may both pass their validators before either runs".

What the SDK (temporalio 1.35) does with them: each update runs its
validator and then its handler up to the handler's first await before the
next update's validator runs, and every handler spends the proof before its
first await. So the second copy meets a spent nonce in its validator and is
refused there (UpdateRefused, "decision already used"): the handler's
DecisionReplayed is the guard for an SDK that would validate a batch of
updates before running any. Either refusal must be final (non-retryable),
and the copy must change nothing: one note, one accepted update, the
incident as it was."""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from stanch.harness.waiting import eventually
from stanch.models.incident import AddNote, IncidentStatus, UpdateResult
from stanch.testing.decisions import signed
from stanch.workflows.incident import IncidentWorkflow
from stanch.workflows.refusal import UPDATE_REFUSED
from tests.support.before_deploy import OpenIncident

ADMITTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
REPLAY_REFUSALS = {UPDATE_REFUSED, "DecisionReplayed"}  # the validator's, the handler's


async def admitted(handle: WorkflowHandle, update_id: str) -> bool:
    """Whether Temporal holds the update for the workflow (it waits there
    until a worker takes the workflow's next task)."""
    try:
        await handle._client.workflow_service.poll_workflow_execution_update(
            PollWorkflowExecutionUpdateRequest(
                namespace=handle._client.namespace,
                update_ref=UpdateRef(
                    workflow_execution=WorkflowExecution(workflow_id=handle.id),
                    update_id=update_id,
                ),
                wait_policy=WaitPolicy(lifecycle_stage=ADMITTED),
            ),
            timeout=timedelta(seconds=2),
        )
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def accepted_updates(handle: WorkflowHandle) -> list[str]:
    """The updates this run accepted (a run pinned: once the incident
    continues as new, the latest run is another)."""
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        async for e in handle.fetch_history_events()
        if e.event_type == ACCEPTED
    ]


async def test_one_signed_decision_sent_twice_at_once_counts_once(before_deploy: OpenIncident):
    handle = before_deploy.handle  # no worker runs until `deploy`
    run = handle._client.get_workflow_handle(handle.id, run_id=(await handle.describe()).run_id)
    before = await accepted_updates(run)
    note = await signed(handle.id, "add_note", AddNote(by="bob", text="captured once"))
    copies = [f"copy-{n}-{uuid.uuid4().hex[:8]}" for n in range(2)]
    sent = []
    for update_id in copies:
        # As the gateway sends a person's request (client/updates.py send_update).
        sent.append(
            asyncio.create_task(
                handle.execute_update("add_note", note, id=update_id, result_type=UpdateResult)
            )
        )
        held = functools.partial(admitted, handle, update_id)
        await eventually(held, 10, f"{update_id} held by Temporal")

    async with before_deploy.deploy([]):  # today's code: the worker takes both together
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
        applied = [o for o in outcomes if isinstance(o, UpdateResult)]
        refusals = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError)]
        assert len(applied) == 1 and len(refusals) == 1, outcomes
        assert applied[0].changed
        cause = refusals[0].cause
        assert isinstance(cause, ApplicationError), cause
        assert cause.type in REPLAY_REFUSALS, cause
        assert cause.non_retryable, f"a replayed decision is refused for good: {cause}"
        assert "decision already used" in cause.message

        # Nothing of the copy: one note, one more accepted update, still triggered.
        timeline = await handle.query(IncidentWorkflow.timeline)
        assert [e.summary for e in timeline if e.kind == "note"] == ["captured once"]
        accepted = await accepted_updates(run)
        assert accepted[: len(before)] == before
        assert len(accepted) == len(before) + 1 and accepted[-1] in copies
        view = await handle.query(IncidentWorkflow.state)
        assert view.state.status is IncidentStatus.TRIGGERED
