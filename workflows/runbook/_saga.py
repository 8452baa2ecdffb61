"""What a runbook run did, kept as a saga keeps it: every step's record, the
changes still in place with the undo of each, the evidence captured.

Pure and deterministic (the clock is passed in), so the kit's workflow code
only schedules activities and reports; tests/workflows/test_runbook_books.py checks the
bookkeeping without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from stanch.models.evidence import EvidenceRef
from stanch.models.runbook import StepRecord, StepStatus, Undo

DETAIL_CHARS = 200  # a step's result, as the timeline shows it


class Saga:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.applied: list[Undo] = []  # what is still in place, in the order applied
        self.evidence: list[EvidenceRef] = []

    def begin(self, name: str, mutates: bool, status: StepStatus, now: datetime) -> StepRecord:
        record = StepRecord(name=name, status=status, mutates=mutates, started_at=now)
        self.steps.append(record)
        return record

    def finish(
        self,
        record: StepRecord,
        status: StepStatus,
        detail: str | None,
        now: datetime,
        result: Any = None,
    ) -> None:
        record.status, record.ended_at, record.detail = status, now, detail
        if isinstance(result, EvidenceRef):
            self.evidence.append(result)

    def applied_change(self, step: str, undo: Callable[..., Any], arg: BaseModel) -> None:
        """`step` changed something; `undo(arg)` takes it back."""
        self.applied.append(
            Undo(step=step, activity=activity_name(undo), arg=arg.model_dump(mode="json"))
        )

    def take_applied(self) -> list[Undo]:
        """Everything in place, handed over to be undone (the saga forgets it)."""
        applied, self.applied = self.applied, []
        return applied

    def still_applied(self, undos: list[Undo]) -> None:
        """Undoing failed: what could not be undone stays on record for a human."""
        self.applied = undos

    def approved(self, gate: str) -> bool:
        return any(s.name == gate and s.status is StepStatus.APPROVED for s in self.steps)


def gate_step(step: str) -> str:
    """The step record an approval gate leaves."""
    return f"approval: {step}"


def activity_name(fn: Callable[..., Any]) -> str:
    defn = getattr(fn, "__temporal_activity_definition", None)
    return str(getattr(defn, "name", None) or fn.__name__)


def request_id_of(result: Any) -> str | None:
    """Azure's request id in an activity's result, for the audit record."""
    found = getattr(result, "request_id", None) or next(
        iter(getattr(result, "request_ids", []) or []), None
    )
    return None if found is None else str(found)


def describe(result: Any) -> str | None:
    """An activity's result in one line for the timeline."""
    if result is None:
        return None
    summary_line = getattr(result, "summary_line", None)
    if callable(summary_line):
        return str(summary_line())
    if isinstance(result, BaseModel):
        text = result.model_dump_json(exclude_none=True)
        return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 3] + "..."
    return str(result)[:DETAIL_CHARS]


def finish_details(
    record: StepRecord, detail: str | None, dry_run: bool, result: Any
) -> dict[str, Any]:
    """The audit record's details for a finished step."""
    return {
        "detail": detail,
        "dry_run": dry_run,
        "mutates": record.mutates,
        **(
            {"sha256": result.sha256, "evidence": result.location}
            if isinstance(result, EvidenceRef)
            else {}
        ),
    }
