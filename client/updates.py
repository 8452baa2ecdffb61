"""People's requests to an incident and its runbooks, as typed updates
(`IncidentWorkflow.acknowledge`, `Runbook.approve`, never a string; the
request's model says which), with one
reading of their failures: Refused in the workflow's words, NotFound, or
Unavailable. The workflow's validator has the last word, before anything
enters its history.

Whoever forwards a person's request vouches for it with `sign` (the gateway's
DecisionSigner). A workflow opened before decisions were signed, or whose plan
is still loading, refuses for want of keys: it is asked to load them and the
request is signed afresh and sent again, a few times."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from stanch.client.errors import UNANSWERED, NotFound, Refused, Unavailable
from stanch.client.incidents import DETAIL_WAIT, fetch_incident, incident_handle
from stanch.client.stuck import failed_task_refusal, stuck_now, stuck_words
from stanch.models.decision import NO_KEYS_YET, PersonRequest
from stanch.models.incident import (
    Acknowledge,
    AddNote,
    AssignRole,
    ChangeStatus,
    RequestRelease,
    Resolve,
    UpdateResult,
)
from stanch.models.runbook import ApprovalDecision, RunbookView
from stanch.workflows.incident import IncidentWorkflow
from stanch.workflows.runbook import Runbook

KEYLESS_RETRIES = 3  # refusals for want of decision keys before the refusal stands
Request = TypeVar("Request", bound=PersonRequest)
Answer = TypeVar("Answer")
# (workflow id, update name, request) -> the request with its proof attached.
Sign = Callable[[str, str, Request], Request]
Decision = UpdateMethodMultiParam[[Runbook, ApprovalDecision], RunbookView]
# Each answers an UpdateResult (typed Any: the SDK types `@workflow.update(name=...)`
# methods as returning their coroutine).
IncidentUpdateMethod = UpdateMethodMultiParam[[IncidentWorkflow, Any], Any]
INCIDENT_UPDATES: dict[type[PersonRequest], IncidentUpdateMethod] = {
    Acknowledge: IncidentWorkflow.acknowledge,
    Resolve: IncidentWorkflow.resolve,
    AddNote: IncidentWorkflow.add_note,
    AssignRole: IncidentWorkflow.assign_role,
    RequestRelease: IncidentWorkflow.request_release,
    ChangeStatus: IncidentWorkflow.change_status,
}


async def update_incident(
    client: Client,
    incident_id: str,
    request: PersonRequest,
    *,
    sign: Sign[Any] | None = None,
    wait: timedelta | None = None,
) -> UpdateResult:
    """A person's request to an incident. The request's type says which update
    it is (one request model per update): `Acknowledge` acknowledges."""
    update = INCIDENT_UPDATES.get(type(request))
    if update is None:
        raise TypeError(f"{type(request).__name__} is not a request an incident takes")
    handle = incident_handle(client, incident_id)
    # A stuck incident would hold the request ~20 s, then fail it: refuse now.
    stuck = await stuck_now(client, handle.id, "IncidentWorkflow")
    if stuck is not None:
        raise Refused(stuck.summary)
    result: UpdateResult = await send_update(
        handle,
        update,
        request,
        sign=sign,
        refresh=IncidentWorkflow.refresh_decision_keys,
        wait=wait,
    )
    return result


async def decide_step(
    client: Client,
    incident_id: str,
    decision: ApprovalDecision,
    *,
    approve: bool,
    sign: Sign[ApprovalDecision] | None = None,
    wait: timedelta = DETAIL_WAIT,
) -> RunbookView:
    """Approve or reject the step a runbook of this incident waits at (`wait`
    bounds reading which runbook that is)."""
    target = await _deciding_runbook(client, incident_id, decision.step, wait)
    runbook: WorkflowHandle[Any, Any] = client.get_workflow_handle(target.workflow_id)
    # The SDK types `@workflow.update(name=...)` methods as returning their coroutine.
    verb = cast(Decision, Runbook.approve if approve else Runbook.reject)
    return await send_update(
        runbook, verb, decision, sign=sign, refresh=Runbook.refresh_decision_keys
    )


async def _deciding_runbook(
    client: Client, incident_id: str, step: str, wait: timedelta
) -> RunbookView:
    """The runbook a decision on `step` goes to, refused at once if it or its
    incident is stuck. Two queries: the incident's state (which runbook) and a
    replay of that runbook. Only when the incident does not answer is it read
    the long way (fetch_incident: the timeline, describes), to say why."""
    try:
        view = await incident_handle(client, incident_id).query(
            IncidentWorkflow.state, rpc_timeout=wait
        )
    except (WorkflowQueryFailedError, RPCError):
        detail = await fetch_incident(client, incident_id, wait)
        if detail.stuck is not None:  # the incident or its runbook: nothing of it can decide
            raise Refused(detail.stuck.summary) from None
        view = detail.view
    target = view.state.runbook_awaiting(step)
    if target is None:
        raise NotFound(f"incident {incident_id} has no runbook waiting")
    stuck = await stuck_now(client, target.workflow_id, target.runbook)
    if stuck is not None:
        raise Refused(stuck.summary)
    return target


async def send_update(
    handle: WorkflowHandle[Any, Any],
    update: UpdateMethodMultiParam[[Any, Request], Answer],
    request: Request,
    *,
    sign: Sign[Request] | None = None,
    refresh: Callable[[Any], None] | None = None,
    wait: timedelta | None = None,
) -> Answer:
    """Executes `update` with `request`; its failures become the client room's
    errors. With `sign` and `refresh`, a refusal for want of decision keys
    sends `refresh` (the workflow's signal to load them) and tries again.
    `wait` bounds each attempt (no bound by default: an update may start work)."""
    name = update_name(update)
    for attempt in range(KEYLESS_RETRIES + 1):
        sent = signed(request, sign, handle.id, name)
        try:
            return await handle.execute_update(update, sent, rpc_timeout=wait)
        except WorkflowUpdateFailedError as e:
            said = refusal_words(e)
            keyless = said.startswith(NO_KEYS_YET) and sign is not None and refresh is not None
            if not keyless or attempt == KEYLESS_RETRIES:
                raise Refused(said) from None
            assert refresh is not None
            await handle.signal(refresh)
            await asyncio.sleep(0.5 * (attempt + 1))
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise Unavailable(f"{handle.id} did not answer: are its workers running?") from None
        except RPCError as e:
            if e.status is RPCStatusCode.NOT_FOUND:
                raise NotFound(f"no open incident or runbook {handle.id}") from None
            if failed_task_refusal(e):  # it got stuck since it was checked
                raise Refused(stuck_words(handle.id)) from None
            if e.status in UNANSWERED:
                raise Unavailable(f"{handle.id} did not answer: {e.message}") from None
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def signed(request: Request, sign: Sign[Request] | None, workflow_id: str, name: str) -> Request:
    """`request` with its signer's proof that a person asked it, for the
    action `name` on `workflow_id` only; as it is where nothing signs."""
    return request if sign is None else sign(workflow_id, name, request)


def update_name(update: UpdateMethodMultiParam[Any, Any]) -> str:
    """The name an update is registered under: what a decision is signed for."""
    name = update._defn.name  # the SDK's own record of the decorated method
    if not name:
        raise ValueError("a dynamic update has no name to sign for")
    return str(name)


def refusal_words(error: WorkflowUpdateFailedError) -> str:
    """The validator's reason, without the exception type the SDK prefixes."""
    cause = error.cause
    said = str(getattr(cause, "message", None) or cause)
    return said.removeprefix("ValueError: ")
