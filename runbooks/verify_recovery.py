"""Verify recovery on its own: poll a metric or a KQL condition until the
resource is healthy, or give up at a deadline. Changes nothing. The check
itself is the kit's `await_recovery` (workflows/runbook), which other runbooks
end with; `RecoveryParams` stays importable from here."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import RecoveryParams, Runbook, await_recovery


@workflow.defn(name="verify_recovery")
class VerifyRecovery(Runbook):
    spec = RunbookSpec(
        name="verify_recovery",
        description="Poll a metric or KQL condition until healthy or a deadline.",
        risk=Risk.LOW,
        author="stanch",
        outcome=RunbookOutcome.MITIGATED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        await await_recovery(self, self.parameters(RecoveryParams))
        return RunbookOutcome.MITIGATED
