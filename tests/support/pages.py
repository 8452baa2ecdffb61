"""A page as the incident workflow hands it to the notifier."""

from __future__ import annotations

from stanch.models.incident import IncidentStatus, Page, RosterEntry
from stanch.models.severity import Severity


def page(channels: list[str] | None = None, title: str = "cpu-high") -> Page:
    """Alice paged at tier 1 for a SEV1 on vm1; `channels` None means every channel."""
    return Page(
        incident_id="abc",
        workflow_id="incident-abc",
        title=title,
        severity=Severity.SEV1,
        status=IncidentStatus.TRIGGERED,
        service="compute",
        resources=["/subscriptions/s/vm1"],
        recipients=[RosterEntry(id="alice", name="Alice")],
        tier=1,
        round=0,
        channels=channels,
        reason="incident opened",
    )
