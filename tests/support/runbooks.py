"""Running runbooks on their own, as tests and drills do, and what they left
behind: stanch.testing's helpers, the ones teams' tests use too."""

from __future__ import annotations

from stanch.testing.runbooks import (
    ROSTER,
    approval_plan,
    audit_records,
    journal_mutations,
    result_of,
    start_runbook,
)

__all__ = [
    "ROSTER",
    "approval_plan",
    "audit_records",
    "journal_mutations",
    "result_of",
    "start_runbook",
]
