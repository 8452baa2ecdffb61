"""Quiet hours (issue 17 item 6), with no Temporal in them: a page that falls
due inside one of the service's maintenance windows is held until the window
ends, said so on the timeline. The hold moves the escalation's next page, so
the run loop's one deadline timer (durable) releases it; an incident resolved
or acknowledged meanwhile stops paging as always, and never pages."""

from __future__ import annotations

from datetime import datetime

from stanch.models.incident import IncidentState, ResponsePlan
from stanch.models.maintenance import quiet_until
from stanch.workflows.lifecycle import SYSTEM_ACTOR, Note


def held_for_maintenance(state: IncidentState, plan: ResponsePlan, now: datetime) -> Note | None:
    """Holds the page due now when a window is open; the line saying so."""
    until = quiet_until(plan.maintenance, now)
    if until is None:
        return None
    state.escalation.next_page_at = until
    return Note(
        "paging_held",
        f"Maintenance window for {plan.service}: alert recorded, paging held until "
        f"{until:%Y-%m-%d %H:%M}Z (pages then if still firing)",
        SYSTEM_ACTOR,
    )
