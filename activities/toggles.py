"""The kill switch as runbooks ask it, before every change (the store: stores/toggles.py)."""

from __future__ import annotations

from temporalio import activity

from stanch.models.toggles import RemediationAllowed, RemediationCheck
from stanch.stores.toggles import UNREADABLE_METRIC, ToggleStore


class ToggleActivities:
    def __init__(self, store: ToggleStore) -> None:
        self._store = store

    @activity.defn
    async def check_remediation(self, check: RemediationCheck) -> RemediationAllowed:
        """Read-only: safe to retry."""
        answer, readable = self._store.answer(check.runbook)
        # The worker's own metrics endpoint (Temporal's runtime) shows it too.
        activity.metric_meter().create_gauge(
            UNREADABLE_METRIC, "1 while the toggle store is unreadable: remediation halted"
        ).set(0 if readable else 1)
        return answer
