"""`stanch approve | reject | release`: decisions on a running runbook, sent
through the on-call API with the caller's credential. The gateway checks the
credential's role, and the runbook's own rules (roster, four eyes, quorum)
decide; either refusal is the CLI's answer."""

from __future__ import annotations

from temporalio.client import Client

from cli.api_client import OnCallApi, incident_path
from cli.errors import UsageError
from cli.incidents import ask_workflow, fetch_incident
from models.incident import UpdateResult
from models.runbook import ApprovalDecision, RunbookView


async def decide_step(
    api: OnCallApi, incident: str, step: str, approve: bool, comment: str | None
) -> RunbookView:
    if not step.strip():
        raise UsageError("STEP: empty (the step `stanch show` names as waiting for approval)")
    verb = "approve" if approve else "reject"
    path = incident_path(incident, "approvals", step, verb)
    return RunbookView.model_validate(await api.post(path, {"comment": comment}))


async def ask_release(api: OnCallApi, incident: str, reason: str | None) -> UpdateResult:
    path = incident_path(incident, "release")
    return UpdateResult.model_validate(await api.post(path, {"reason": reason}))


# Straight to Temporal, for tests and tools that hold Temporal access; the
# CLI never uses them (see cli/incidents.py).


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
