"""One runbook in two versions, for tests of replay: the second reads the
resource before its gate, which a run recorded by the first never did."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.activities.resources import ResourceActivities
    from stanch.models.azure import ResourceRef, TagChange
    from stanch.models.config import AlertMatch
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import Runbook

SPEC = RunbookSpec(
    name="label_guard",
    description="labels a VM once approved (a replay test's runbook)",
    risk=Risk.MEDIUM,
    author="stanch tests",
    matches=AlertMatch(resource_types=["microsoft.compute/virtualmachines"]),
    approvals={"apply": Risk.MEDIUM},
    outcome="mitigated",
)


@workflow.defn(name="label_guard")
class LabelGuard(Runbook):
    spec = SPEC

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        await self.approval("apply")
        change = TagChange(resource_id=self.resource_id, tags={"stanch.label": "guard"})
        await self.act("label", ResourceActivities.merge_tags, change)
        return RunbookOutcome.MITIGATED


@workflow.defn(name="label_guard")
class LabelGuardReadingFirst(Runbook):
    """The naive change: a new step ahead of the gate, not behind a patch."""

    spec = SPEC

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        await self.step(
            "read", ResourceActivities.get_resource, ResourceRef(resource_id=self.resource_id)
        )
        await self.approval("apply")
        change = TagChange(resource_id=self.resource_id, tags={"stanch.label": "guard"})
        await self.act("label", ResourceActivities.merge_tags, change)
        return RunbookOutcome.MITIGATED
