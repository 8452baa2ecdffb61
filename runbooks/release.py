"""Release: take back what a runbook applied (lift a quarantine), once a second
person has approved it."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec, Undo
    from stanch.workflows.runbook import Runbook


class ReleaseParams(BaseModel):
    runbook: str  # whose changes are being taken back
    applied: list[Undo]


@workflow.defn(name="release")
class Release(Runbook):
    spec = RunbookSpec(
        name="release",
        description="Undo, latest first, exactly what a runbook applied. Needs approval "
        "from someone other than the requester.",
        risk=Risk.HIGH,
        author="stanch",
        approvals={"release": Risk.HIGH},
        outcome=RunbookOutcome.RELEASED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        params = self.parameters(ReleaseParams)
        await self.approval("release")
        await self.undo_all(params.applied)
        return RunbookOutcome.RELEASED
