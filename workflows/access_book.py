"""What an incident keeps of its emergency access grants: pure and
deterministic, like workflows/lifecycle.py.

Each grant (workflows/access_grant.py) reports to its incident; the incident
keeps the latest view of each (the page and `stanch access list` read them),
tells the story on its timeline, and, when it closes, ends every grant still
open so that no access outlives the incident.
"""

from __future__ import annotations

from stanch.models.access_grant import AccessEvent, AccessGrantView, GrantStatus
from stanch.models.incident import IncidentState
from stanch.workflows.lifecycle import Note

# Grants kept per incident; beyond it the oldest finished ones are dropped
# (they stay on the timeline and the audit trail).
GRANTS_KEPT = 50


def access_reported(state: IncidentState, event: AccessEvent) -> list[Note]:
    grant = event.grant
    kept = [g for g in state.access if g.grant_id != grant.grant_id]
    kept.append(grant)
    while len(kept) > GRANTS_KEPT:
        oldest_done = next((g for g in kept if not g.status.is_open), None)
        if oldest_done is None:
            break
        kept.remove(oldest_done)
    state.access = kept
    if event.kind.startswith("step_running"):
        return []  # the finished step tells the story
    return [
        Note(f"access:{event.kind}", f"[access {grant.grant_id}] {event.summary}", _actor(grant))
    ]


def grants_to_end(state: IncidentState) -> list[AccessGrantView]:
    """Grants still open when the incident closes: each is told to end."""
    return [g for g in state.access if g.status.is_open]


def _actor(grant: AccessGrantView) -> str:
    return f"access:{grant.guest}"


def active(grants: list[AccessGrantView]) -> list[AccessGrantView]:
    return [g for g in grants if g.status is GrantStatus.ACTIVE]
