"""Running runbooks on their own, as tests and drills do, and what they left
behind: stanch.testing's helpers (start_runbook, approval_plan, result_of,
journal_mutations, audit_records, ROSTER), the ones teams' tests use too."""

from typing import Any

from stanch.testing import runbooks


def __getattr__(name: str) -> Any:
    return getattr(runbooks, name)
