"""Verify recovery: poll a metric or a KQL condition until the resource is
healthy, or give up at a deadline. Changes nothing. Part of the kit, so any
runbook (built in or a team's) ends with the same check."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.monitor import MonitorActivities
    from stanch.models.azure import KqlQuery, MetricsQuery

if TYPE_CHECKING:
    from stanch.workflows.runbook._kit import Runbook


class RecoveryParams(BaseModel):
    metric: str | None = "Percentage CPU"
    metric_namespace: str = "Microsoft.Compute/virtualMachines"
    healthy_below: float = 80.0
    query: str | None = None  # KQL against the resource: healthy when it returns no rows
    every: timedelta = timedelta(minutes=1)
    deadline: timedelta = timedelta(minutes=30)


async def await_recovery(runbook: Runbook, params: RecoveryParams) -> None:
    """Return once the resource is healthy; fail the run (NotRecovered) at the
    deadline. Each check is a step on the timeline."""
    if params.metric is None and params.query is None:
        raise ApplicationError(
            "give a metric or a query to verify recovery", type="InvalidParams", non_retryable=True
        )
    give_up = workflow.now() + params.deadline
    check = 0
    while True:
        check += 1
        healthy = True
        if params.metric is not None:
            metrics = await runbook.step(
                f"check {params.metric} (#{check})",
                MonitorActivities.read_metrics,
                MetricsQuery(
                    resource_ids=[runbook.resource_id],
                    namespace=params.metric_namespace,
                    names=[params.metric],
                    timespan=timedelta(minutes=5),
                ),
            )
            latest = next((s.latest() for s in metrics.series), None)
            healthy = latest is not None and latest < params.healthy_below
        if healthy and params.query is not None:
            found = await runbook.step(
                f"check logs (#{check})",
                MonitorActivities.run_kql,
                KqlQuery(resource_id=runbook.resource_id, query=params.query),
            )
            healthy = not any(t.rows for t in found.tables)
        if healthy:
            return
        if workflow.now() + params.every > give_up:
            raise ApplicationError(
                f"not recovered after {params.deadline} ({check} checks)",
                type="NotRecovered",
                non_retryable=True,
            )
        await workflow.sleep(params.every, summary="wait before checking recovery again")
