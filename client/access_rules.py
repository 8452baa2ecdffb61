"""Before a grant is started: everything the policy alone can refuse, named by
the on-call API's field, so a bad request is a 4xx and nothing starts.

The same rules decide again inside the grant's workflow (models/access.py for
the guest, role and duration; the runbook kit for the scope): these checks
spare a person a workflow that could only be refused, they are not the guard.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from stanch.models.access import grant_refusal
from stanch.models.config import StanchConfig
from stanch.workflows.scope import scope_refusal, tags_needed

# models/access.py names the CLI's flags (`--to`, `--for`); the API's fields differ.
API_FIELDS = {"to": "guest", "for": "duration"}


def access_refusals(
    policy: StanchConfig,
    guest: str,
    role: str,
    scope: str,
    duration: timedelta,
    now: datetime,
) -> list[str]:
    """Why this request may not be granted, each naming its field; [] if it may."""
    refusals: list[str] = []
    said = grant_refusal(policy.guests, policy.access.emergency_roles, guest, role, duration, now)
    if said is not None:
        field, _, why = said.partition(": ")
        refusals.append(f"{API_FIELDS.get(field, field)}: {why}")
    scopes = policy.remediation.scopes
    # Scopes that require tags need a read of the resource: the workflow does it.
    if not tags_needed(scope, scopes) and (outside := scope_refusal(scope, scopes)):
        refusals.append(f"scope: {outside}")
    return refusals
