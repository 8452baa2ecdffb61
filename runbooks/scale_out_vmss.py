"""Scale out a saturated VM scale set, within a ceiling, and verify the load
came down. Buying headroom is usually the fastest mitigation for a capacity
incident, and the easiest to take back (release scales it in again)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.compute import ComputeActivities
    from stanch.models.azure import ResourceRef, ScaleRequest
    from stanch.models.config import AlertMatch
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import RecoveryParams, Runbook, await_recovery


UNDO_FROM_READ_PATCH = "scale-undo-from-read"


class ScaleOutParams(BaseModel):
    add: int = Field(default=2, ge=1, le=50)  # instances added per run
    max_capacity: int = Field(default=20, ge=1)  # never beyond this, whatever the load
    healthy_below: float = 75.0  # Percentage CPU across the set, after scaling


@workflow.defn(name="scale_out_vmss")
class ScaleOutVmss(Runbook):
    spec = RunbookSpec(
        name="scale_out_vmss",
        description="Add instances to a saturated scale set (up to a ceiling), then verify "
        "CPU came down. Release scales it back in.",
        risk=Risk.MEDIUM,
        author="stanch",
        matches=AlertMatch(
            resource_types=["microsoft.compute/virtualmachinescalesets"],
            monitoring_services=["Platform"],
        ),
        approvals={"scale out": Risk.MEDIUM},
        outcome=RunbookOutcome.MITIGATED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        params = self.parameters(ScaleOutParams)
        current = await self.step(
            "read capacity",
            ComputeActivities.read_scale_set,
            ResourceRef(resource_id=self.resource_id),
        )
        target = min(current.capacity + params.add, params.max_capacity)
        if target <= current.capacity:
            raise ApplicationError(
                f"already at the ceiling of {params.max_capacity} instances: scaling out "
                "cannot help; look for the cause",
                type="AtCapacityCeiling",
                non_retryable=True,
            )
        await self.approval("scale out")
        # Runs started before the undo target came from the read above replay
        # with the request they scheduled.
        known = current.capacity if workflow.patched(UNDO_FROM_READ_PATCH) else None
        await self.act(
            f"scale out to {target}",
            ComputeActivities.scale_scale_set,
            ScaleRequest(resource_id=self.resource_id, capacity=target, previous=known),
            undo=lambda result: (
                ComputeActivities.scale_scale_set,
                ScaleRequest(resource_id=self.resource_id, capacity=result.previous),
            ),
        )
        await await_recovery(
            self,
            RecoveryParams(
                metric="Percentage CPU",
                metric_namespace="Microsoft.Compute/virtualMachineScaleSets",
                healthy_below=params.healthy_below,
            ),
        )
        return RunbookOutcome.MITIGATED
