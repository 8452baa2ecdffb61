"""Restart a VM that is up but unhealthy, then verify it recovered."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.compute import ComputeActivities
    from stanch.models.azure import VmRef
    from stanch.models.config import AlertMatch
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import RecoveryParams, Runbook, await_recovery


@workflow.defn(name="restart_vm")
class RestartVm(Runbook):
    spec = RunbookSpec(
        name="restart_vm",
        description="Restart an unhealthy running VM (automatic where the approval policy "
        "auto-approves medium risk), then verify recovery through its metrics.",
        risk=Risk.MEDIUM,
        author="stanch",
        matches=AlertMatch(
            resource_types=["microsoft.compute/virtualmachines"], monitoring_services=["Platform"]
        ),
        approvals={"restart": Risk.MEDIUM},
        outcome=RunbookOutcome.MITIGATED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        vm = VmRef(resource_id=self.resource_id)
        power = await self.step("read power state", ComputeActivities.get_power_state, vm)
        if power.power_state != "running":
            # A stopped or deallocated VM was stopped on purpose, or is already
            # being handled: restarting it is not this runbook's call.
            raise ApplicationError(
                f"VM is {power.power_state}, not running", type="NotRunning", non_retryable=True
            )
        await self.approval("restart")
        await self.act("restart", ComputeActivities.restart_vm, vm)
        await await_recovery(self, self.parameters(RecoveryParams))
        return RunbookOutcome.MITIGATED
