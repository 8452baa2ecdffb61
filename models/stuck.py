"""A workflow that cannot go on: its workflow task fails every time a worker
runs it (most often a code change that no longer replays its history). What
it last said is all anyone can know of it until the code is fixed, so it is
shown as stuck, never as the "waiting" it was before the change."""

from __future__ import annotations

from pydantic import BaseModel, computed_field

# What to do about it, said wherever a stuck workflow is shown.
RUNBOOK_CHECK_HINT = "a code change broke it: run `stanch runbook check`"


class StuckWorkflow(BaseModel):
    workflow_id: str
    workflow_type: str  # IncidentWorkflow, or the runbook's name
    reason: str  # the worker's own words, e.g. "[TMPRL1100] Nondeterminism error: ..."
    cause: str | None = None  # Temporal's cause, e.g. NON_DETERMINISTIC_ERROR
    attempts: int | None = None  # workflow task attempts so far; None when found by a query

    @property
    def which(self) -> str:
        kinds = {"IncidentWorkflow": "incident", "detector": "detector"}
        kind = kinds.get(self.workflow_type)
        return f"{kind or 'runbook ' + self.workflow_type} ({self.workflow_id})"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """One line for people: `stuck: runbook x (id) — reason (hint)`."""
        return f"stuck: {self.which} — {self.reason} ({RUNBOOK_CHECK_HINT})"
