"""A Sev1 incident's work is handed out ahead of a Sev4 storm's (issue 15,
item 1): the intake starts each incident at a Temporal task priority taken
from its severity, so when the worker is behind, the server gives it the
severe incident's workflow task first, not in arrival order."""

from __future__ import annotations

import uuid
from functools import partial

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.harness.waiting import eventually
from stanch.models.severity import Severity
from stanch.testing.started import Started
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import alert_event, open_incident

STORM = 30


async def test_a_sev1_incident_runs_ahead_of_a_sev4_storm_queued_before_it(
    dev_env: WorkflowEnvironment, started: Started
):
    task_queue = f"tq-{uuid.uuid4()}"
    client = dev_env.client
    # Nobody polls the queue yet: the storm's first workflow tasks wait in it,
    # then the Sev1 incident's, as when the worker is behind during a storm.
    storm = [
        await open_incident(
            started, client, task_queue, f"storm-{n}", alert_event(f"s{n}", severity=Severity.SEV4)
        )
        for n in range(STORM)
    ]
    severe = await open_incident(
        started, client, task_queue, "sev1", alert_event("p1", severity=Severity.SEV1)
    )
    info = (await severe.describe()).raw_description.workflow_execution_info
    assert info.priority.priority_key == 1, info.priority

    # Two slots, so the worker takes tasks a couple at a time in the order the
    # server hands them out (one slot hangs the Python worker: notes/temporal.md).
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow],
        max_concurrent_workflow_tasks=2,
    ):
        everyone = [*storm, severe]
        started_at = {
            h.id: await eventually(partial(_first_task_started, h), 60, f"{h.id}'s first task")
            for h in everyone
        }

    order = sorted(started_at, key=lambda workflow_id: started_at[workflow_id])
    position = order.index(severe.id)
    # In arrival order it runs last or nearly (29th of 31 measured without the
    # priority). With it, 1st to 4th on a quiet machine and up to 12th in a
    # full suite (most likely the task queue's partitions: each orders its own
    # backlog, and the worker's polls reach them in turn).
    assert position < len(order) // 2, (
        f"the Sev1 incident's first task ran {position + 1}th of {len(order)}"
    )


async def _first_task_started(handle: WorkflowHandle) -> int | None:
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return event.event_time.ToNanoseconds()
    return None
