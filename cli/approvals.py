"""`stanch approve | reject | release`: decisions on a running runbook."""

from __future__ import annotations

from temporalio.client import Client

from cli.errors import UsageError
from cli.incidents import ask_workflow, fetch_incident, send_update
from models.incident import RequestRelease, UpdateResult
from models.runbook import ApprovalDecision, RunbookView


async def decide(
    client: Client, incident: str, step: str, by: str, approve: bool, comment: str | None
) -> RunbookView:
    """Sends the decision to the runbook waiting on (or about to reach) `step`.
    The runbook's own validator decides; its refusal is the CLI's answer."""
    state = (await fetch_incident(client, incident)).view.state
    target = state.runbook_awaiting(step)
    if target is None:
        raise UsageError(f"incident {incident!r} has no runbook waiting for a decision")
    return await ask_workflow(
        client,
        target.workflow_id,
        "approve" if approve else "reject",
        ApprovalDecision(step=step, by=by, comment=comment),
        RunbookView,
        f"runbook {target.runbook} is no longer running",
    )


async def request_release(
    client: Client, incident: str, by: str, reason: str | None
) -> UpdateResult:
    return await send_update(
        client, incident, "request_release", RequestRelease(by=by, reason=reason)
    )
