"""A refused update says it is final (review: `temporal workflow update` showed
"'alice' may not approve high-risk steps ... (type: ValueError, retryable: true)").

Sent as any Temporal client would, to the real stack's workflows: the failure
is a non-retryable ApplicationError of type UpdateRefused, and nothing enters
either workflow's history."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from stanch.client.ids import workflow_id_for
from stanch.models.messages import IncidentUpdate, RunbookDecision
from stanch.workflows.refusal import UPDATE_REFUSED
from tests.support.incidents import settled
from tests.support.oncall import open_vm_incident
from tests.support.plans import auth
from tests.support.stack import Stack


async def refusal_of(handle: WorkflowHandle[Any, Any], update: str, arg: dict[str, Any]) -> Any:
    await settled(handle)
    before = len([e async for e in handle.fetch_history_events()])
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, arg)
    after = len([e async for e in handle.fetch_history_events()])
    assert after == before, f"the refused {update} left nothing in {handle.id}'s history"
    return failed.value.cause


async def test_a_refused_update_is_final_and_says_why(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_vm_incident(stack, http)
        detail = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
        runbook = stack.client.get_workflow_handle(detail.json()["state"]["runbook"]["workflow_id"])
    handle = stack.client.get_workflow_handle(workflow_id_for(incident))

    refusals = {
        "not a gate": await refusal_of(
            runbook, RunbookDecision.APPROVE, {"step": "delete-it", "by": "carol"}
        ),
        "unsigned": await refusal_of(
            runbook, RunbookDecision.REJECT, {"step": "isolate", "by": "carol"}
        ),
        "not on roster": await refusal_of(
            handle, IncidentUpdate.ACKNOWLEDGE, {"by": "mallory", "note": "let me in"}
        ),
    }
    for case, cause in refusals.items():
        assert isinstance(cause, ApplicationError), case
        assert (cause.type, cause.non_retryable) == (UPDATE_REFUSED, True), (case, cause)
    assert "not an approval gate" in refusals["not a gate"].message
    assert "'mallory' is not on the roster" in refusals["not on roster"].message

    # Still waiting for a person's decision: nothing was decided by the refusals.
    async with httpx.AsyncClient(timeout=30) as http:
        detail = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
    assert detail.json()["pending_approvals"][0]["step"] == "isolate"
    await handle.terminate("test done")


def test_a_refusal_that_passes_by_itself_stays_retryable():
    from stanch.models.decision import NO_KEYS_YET
    from stanch.workflows.refusal import UPDATE_NOT_YET, refused

    for error in (
        refused(f"{NO_KEYS_YET}: retry in a moment"),
        refused("incident is moving to a new run: send it again in a moment", for_now=True),
    ):
        assert (error.type, error.non_retryable) == (UPDATE_NOT_YET, False)
    final = refused("'alice' may not approve high-risk steps: reserved for approvers")
    assert (final.type, final.non_retryable) == (UPDATE_REFUSED, True)
