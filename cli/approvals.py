"""`stanch approve | reject | release`: decisions on a running runbook."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import UsageError
from cli.incidents import fetch_incident, reason_of, send_update
from models.incident import RequestRelease, UpdateResult
from models.runbook import ApprovalDecision, RunbookView


async def decide(
    client: Client, incident: str, step: str, by: str, approve: bool, comment: str | None
) -> RunbookView:
    """Sends the decision to the runbook waiting on (or about to reach) `step`.
    The runbook's own validator decides; its refusal is the CLI's answer."""
    state = (await fetch_incident(client, incident)).view.state
    candidates = [v for v in (state.release, state.runbook) if v is not None]
    target = next((v for v in candidates if v.pending and v.pending.step == step), None)
    target = target or next((v for v in candidates if v.outcome is None), None)
    if target is None:
        raise UsageError(f"incident {incident!r} has no runbook waiting for a decision")
    handle: Any = client.get_workflow_handle(target.workflow_id)
    try:
        view = await handle.execute_update(
            "approve" if approve else "reject",
            ApprovalDecision(step=step, by=by, comment=comment),
            result_type=RunbookView,
        )
    except WorkflowUpdateFailedError as e:
        raise UsageError(f"refused: {reason_of(e)}") from None
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            raise UsageError(f"runbook {target.runbook} is no longer running") from None
        raise
    assert isinstance(view, RunbookView)
    return view


async def request_release(
    client: Client, incident: str, by: str, reason: str | None
) -> UpdateResult:
    return await send_update(
        client, incident, "request_release", RequestRelease(by=by, reason=reason)
    )
