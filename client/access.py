"""Emergency access grants, from outside a worker: start one for a person's
signed request, list an incident's grants, revoke one.

A grant is a workflow of its own (workflows/access_grant.py) under an id made
of what it grants (`incident-<id>/access-<grant>`): the same request sent twice
while the first is open is refused, not granted twice. The incident keeps the
grants as each last reported; that is what listing reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import UpdateMethodMultiParam

from stanch.client.errors import NotFound, Refused
from stanch.client.incidents import DETAIL_WAIT, fetch_incident
from stanch.client.updates import Sign, send_update, signed
from stanch.models.access_grant import (
    REQUEST_ACCESS,
    AccessGrantInput,
    AccessGrantView,
    AccessRequest,
    RevokeAccess,
    grant_id_of,
    grant_workflow_id,
)
from stanch.workflows.access_grant import AccessGrantWorkflow

Revoke = UpdateMethodMultiParam[[Any, RevokeAccess], AccessGrantView]


async def request_access(
    client: Client,
    task_queue: str,
    incident_id: str,
    request: AccessRequest,
    *,
    principal_id: str,
    sign: Sign[AccessRequest] | None = None,
    wait: timedelta = DETAIL_WAIT,
) -> AccessGrantView:
    """Starts the grant for `request` on an open incident. `principal_id`:
    the guest's, from the policy (the grant's id is made of it)."""
    detail = await fetch_incident(client, incident_id, wait)
    state = detail.view.state
    if not state.status.is_open:
        raise Refused(f"incident {incident_id} is {state.status}: no access is granted for it")
    grant_id = grant_id_of(state.incident_id, principal_id, request.role, request.scope)
    workflow_id = grant_workflow_id(state.workflow_id, grant_id)
    try:
        await client.start_workflow(
            AccessGrantWorkflow.run,
            AccessGrantInput(
                incident_id=state.incident_id,
                incident_workflow_id=state.workflow_id,
                resource_id=request.scope,
                requested_by=request.by,
                grant_id=grant_id,
                request=signed(request, sign, workflow_id, REQUEST_ACCESS),
                title=state.title,
                severity=state.severity,
                status=state.status,
                service=state.service,
            ),
            id=workflow_id,
            task_queue=task_queue,
        )
    except WorkflowAlreadyStartedError:
        raise Refused(
            f"access {grant_id} ({request.role} on {request.scope} for {request.guest}) is "
            "already requested or active for this incident"
        ) from None
    return AccessGrantView(
        grant_id=grant_id,
        workflow_id=workflow_id,
        guest=request.guest,
        principal_id=principal_id,
        role=request.role,
        scope=request.scope,
        duration=request.duration,
        requested_by=request.by,
        requested_at=datetime.now(UTC),
    )


async def incident_access(
    client: Client, incident_id: str, wait: timedelta = DETAIL_WAIT
) -> list[AccessGrantView]:
    """The incident's grants as each last reported, newest first."""
    detail = await fetch_incident(client, incident_id, wait)
    return sorted(detail.view.state.access, key=lambda g: g.requested_at, reverse=True)


async def revoke_access(
    client: Client,
    incident_id: str,
    grant_id: str,
    request: RevokeAccess,
    *,
    sign: Sign[RevokeAccess] | None = None,
    wait: timedelta = DETAIL_WAIT,
) -> AccessGrantView:
    """Ends a grant now (or withdraws it while it waits for approval)."""
    grants = await incident_access(client, incident_id, wait)
    grant = next((g for g in grants if g.grant_id == grant_id.removeprefix("access-")), None)
    if grant is None:
        known = ", ".join(g.grant_id for g in grants) or "none"
        raise NotFound(f"incident {incident_id} has no access grant {grant_id!r} (grants: {known})")
    if not grant.status.is_open:  # its workflow is over: say why, not "not found"
        raise Refused(f"access {grant.grant_id} is already {grant.status}")
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(grant.workflow_id)
    # The SDK types `@workflow.update(name=...)` methods as returning their coroutine.
    revoke = cast(Revoke, AccessGrantWorkflow.revoke)
    view: AccessGrantView = await send_update(
        handle,
        revoke,
        request,
        sign=sign,
        refresh=AccessGrantWorkflow.refresh_decision_keys,
    )
    return view
