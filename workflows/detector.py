"""DetectorWorkflow: one scheduled check. Temporal Schedules start it every
`every`; it evaluates the condition and raises the verdict through the intake."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from stanch.activities.detectors import DetectorActivities
    from stanch.models.detector import DetectorRun, DetectorSignal, DetectorVerdict

RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5)


@workflow.defn(name="detector")
class DetectorWorkflow:
    @workflow.run
    async def run(self, run: DetectorRun) -> DetectorVerdict:
        verdict = await workflow.execute_activity_method(
            DetectorActivities.evaluate_detector,
            run,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RETRY,
        )
        await workflow.execute_activity_method(
            DetectorActivities.raise_detector_alert,
            DetectorSignal(
                detector=run.detector,
                verdict=verdict,
                run_key=workflow.info().workflow_id.rsplit("-", 1)[-1],
                at=workflow.now(),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        return verdict
