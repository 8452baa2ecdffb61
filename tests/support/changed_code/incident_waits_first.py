"""IncidentWorkflow changed naively: it now waits a moment before loading its
plan. An incident opened by the old code began with that activity, so its
history no longer replays."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.models.incident import IncidentInput, IncidentState
    from stanch.workflows.incident import IncidentWorkflow


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflowWaitsFirst(IncidentWorkflow):
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        super().__init__(inp)

    @workflow.run
    async def run(self, inp: IncidentInput) -> IncidentState:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(inp)
