"""A drill's emergency access: during the incident someone asks that a guest
be granted a role, another person approves it through the on-call API, the
guest reads logs in azuresim with their own token while the grant lasts, and
the grant is revoked at its expiry.

Drills run in real time, so a scenario's grant lasts seconds where the story
says hours (say so in its description). What is measured: first alert to the
role assignment made, and how late after its expiry the revocation came; the
guest's reads are checked while it holds the role and after it lost it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from stanch.azuresim.rbac import guest_token
from stanch.cli.api_client import OnCallApi, incident_path
from stanch.cli.errors import UsageError
from stanch.models.access import find_guest
from stanch.models.access_grant import AccessGrantView
from stanch.models.duration import Duration
from stanch.models.incident import IncidentState
from stanch.stores.policy import load_config

POLL = 0.2


class DrillAccess(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asked_by: str
    to: str  # a guest's id in the scenario's policy
    role: str
    scope: str
    duration: Duration  # real time: seconds in a drill, hours in the story
    after: Duration = timedelta(seconds=1)  # after the first alert
    approved_by: str
    approve_after: Duration = timedelta(seconds=1)  # after the grant waits for approval
    # A Log Analytics workspace (its customer id) the guest queries with their
    # own token: answered while the grant lasts, refused before and after.
    workspace: str | None = None


class GuestReads(BaseModel):
    while_granted: bool | None = None
    after_revoked: bool | None = None


async def play_access(
    plan: DrillAccess,
    incident: str,
    api_for: Any,
    sim_url: str,
    ca_file: Path,
    policy: Path,
    reads: GuestReads,
    problems: list[str],
) -> None:
    """Ask, approve, watch the guest's reads; returns once the grant has ended."""
    await asyncio.sleep(plan.after.total_seconds())
    asker, approver = api_for(plan.asked_by), api_for(plan.approved_by)
    body = {
        "guest": plan.to,
        "role": plan.role,
        "scope": plan.scope,
        "duration": plan.duration.total_seconds(),
        "reason": "drill",
    }
    try:
        grant_id = (await asker.post(incident_path(incident, "access"), body))["grant_id"]
    except UsageError as e:
        problems.append(f"{plan.asked_by} could not ask for access: {e}")
        return
    guest = find_guest(load_config(policy).guests, plan.to)
    token = guest_token(guest.principal_id) if guest else None
    waiting = await _grant_when(asker, incident, grant_id, lambda g: _pending(g) or _ended(g))
    if _pending(waiting):
        await asyncio.sleep(plan.approve_after.total_seconds())
        gate = incident_path(incident, "approvals", f"access-{grant_id}", "approve")
        try:
            await approver.post(gate, {"comment": "drill"})
        except UsageError as e:
            problems.append(f"{plan.approved_by} could not approve access-{grant_id}: {e}")
            return
    held = await _grant_when(asker, incident, grant_id, lambda g: g.status != "requested")
    if held.status == "active" and plan.workspace and token:
        reads.while_granted = await _guest_reads(sim_url, ca_file, token, plan.workspace)
    ended = await _grant_when(asker, incident, grant_id, _ended)
    if plan.workspace and token:
        reads.after_revoked = await _guest_reads(sim_url, ca_file, token, plan.workspace)
    if ended.status != "revoked":
        problems.append(f"access {grant_id} ended {ended.status}: {ended.detail or ''}")


def _pending(grant: AccessGrantView) -> bool:
    return grant.view is not None and grant.view.pending is not None


def _ended(grant: AccessGrantView) -> bool:
    return not grant.status.is_open


async def _grant_when(api: OnCallApi, incident: str, grant_id: str, check: Any) -> AccessGrantView:
    while True:
        with contextlib.suppress(UsageError):  # not reported to its incident yet
            listing = await api.get(incident_path(incident, "access"))
            for found in listing["incidents"][0]["grants"]:
                grant = AccessGrantView.model_validate(found)
                if grant.grant_id == grant_id and check(grant):
                    return grant
        await asyncio.sleep(POLL)


async def _guest_reads(sim_url: str, ca_file: Path, token: str, workspace: str) -> bool:
    """The guest's own Log Analytics query: answered (True) or refused (403)."""
    async with httpx.AsyncClient(verify=str(ca_file), timeout=30) as http:
        answer = await http.post(
            f"{sim_url}/v1/workspaces/{workspace}/query",
            json={"query": "Event | take 1", "timespan": "PT1H"},
            headers={"Authorization": f"Bearer {token}"},
        )
    if answer.status_code not in (200, 403):
        raise UsageError(f"azuresim answered the guest's query {answer.status_code}")
    return answer.status_code == 200


def access_report(state: IncidentState, reads: GuestReads) -> tuple[list[str], list[str]]:
    """What the report lists of each grant, and the problems the guest's reads show."""
    lines = [
        f"access {g.grant_id}: {g.role} for {g.guest} on {g.scope}: {g.status}"
        + (f" ({g.revoked_because})" if g.revoked_because else "")
        + (f", approved by {', '.join(g.approved_by)}" if g.approved_by else "")
        for g in state.access
    ]
    problems = []
    if reads.while_granted is False:
        problems.append("the guest could not read the workspace while the grant lasted")
    if reads.after_revoked:
        problems.append("the guest still read the workspace after the grant was revoked")
    if reads.while_granted is not None:
        lines.append(
            f"guest's reads: while granted {'answered' if reads.while_granted else 'refused'}, "
            f"after revocation {'answered' if reads.after_revoked else 'refused'}"
        )
    return lines, problems


def access_times(state: IncidentState) -> tuple[timedelta | None, timedelta | None]:
    """First alert to the role assignment made; the grant's expiry to its revocation."""
    grant = next(iter(state.access), None)
    if grant is None or grant.granted_at is None:
        return None, None
    granted = grant.granted_at - state.opened_at
    revoked_late = None
    if (
        grant.revoked_at
        and grant.expires_at
        and (grant.revoked_because or "").startswith("expired")
    ):
        revoked_late = max(grant.revoked_at - grant.expires_at, timedelta(0))
    return granted, revoked_late
