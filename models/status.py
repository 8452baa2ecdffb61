"""Where an incident stands and how a runbook ended. Their own module because
the incident models and the runbook models both name them (a runbook's pages
say the incident's status, a runbook's spec the status it leads to), and
models/incident.py imports models/runbook.py."""

from __future__ import annotations

from enum import StrEnum


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    CONTAINED = "contained"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def order(self) -> int:
        return list(IncidentStatus).index(self)

    @property
    def is_open(self) -> bool:
        return self not in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED)


class RunbookOutcome(StrEnum):
    CONTAINED = "contained"
    NOT_NEEDED = "not_needed"  # its check found nothing to remediate
    MITIGATED = "mitigated"
    RELEASED = "released"
    PLANNED = "planned"  # dry run
    DENIED = "denied"  # an approval was refused or timed out
    HALTED = "halted"  # the kill switch stopped it
    REFUSED = "refused"  # asked to change something outside remediation.scopes
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def succeeded(self) -> bool:
        return self in (
            RunbookOutcome.CONTAINED,
            RunbookOutcome.MITIGATED,
            RunbookOutcome.RELEASED,
            RunbookOutcome.PLANNED,
        )
