"""quarantine_vm with a new step before its gate, added naively: an instance
already waiting at the gate cannot replay it (its history starts with
another activity)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.activities.monitor import MonitorActivities
    from stanch.models.azure import KqlQuery
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult
    from stanch.runbooks.quarantine_vm import QuarantineVm

DISK_ERRORS = "Event | where RenderedDescription has 'disk' | take 20"


@workflow.defn(name="quarantine_vm")
class QuarantineVmLooksForDiskErrors(QuarantineVm):
    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        await self.step(
            "look for disk errors",
            MonitorActivities.run_kql,
            KqlQuery(resource_id=self.resource_id, query=DISK_ERRORS),
        )
        return await super().procedure()
