"""`stanch approve | reject | release`: decisions on a running runbook, sent
through the on-call API with the caller's credential. The gateway checks the
credential's role, and the runbook's own rules (roster, four eyes, quorum)
decide; either refusal is the CLI's answer."""

from __future__ import annotations

from stanch.cli.api_client import OnCallApi, incident_path
from stanch.cli.errors import UsageError
from stanch.models.incident import UpdateResult
from stanch.models.runbook import RunbookView


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
