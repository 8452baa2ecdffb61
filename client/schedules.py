"""Keeps one Temporal Schedule per detector in stanch.yaml: created, updated
when the file changes, deleted when a detector is removed. Run at worker start."""

from __future__ import annotations

import logging

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from stanch.models.config import Detector
from stanch.models.detector import DetectorRun
from stanch.workflows.detector import DetectorWorkflow

PREFIX = "stanch-detector-"
log = logging.getLogger("stanch.detectors")


def detector_schedule(detector: Detector, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DetectorWorkflow.run,
            DetectorRun(detector=detector),
            id=f"{PREFIX}{detector.name}",  # the schedule appends each run's time
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=detector.every)]),
        # A check that is still running is not started twice, and after an
        # outage one catch-up run is enough.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=detector.every),
    )


async def sync_detectors(client: Client, detectors: list[Detector], task_queue: str) -> list[str]:
    wanted = {f"{PREFIX}{d.name}": d for d in detectors}
    for schedule_id, detector in wanted.items():
        schedule = detector_schedule(detector, task_queue)
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id).update(replace)
    async for listed in await client.list_schedules():
        if listed.id.startswith(PREFIX) and listed.id not in wanted:
            log.info("detector %s was removed from the policy: deleting its schedule", listed.id)
            await client.get_schedule_handle(listed.id).delete()
    return sorted(wanted)
