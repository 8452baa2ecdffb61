"""Alerts that piled up while no worker ran are applied a workflow task's worth
at a time (workflows/incident.py, PACED_ALERTS_PATCH), in arrival order, none
lost. Before, every piled signal came in one activation: 30,000 alerts took a
loaded worker past the SDK's 2 s deadlock limit, the task failed on every
retry and the incident answered nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from stanch.harness.waiting import eventually
from stanch.models.alert import MonitorCondition
from stanch.models.incident import IncidentState, IncidentStatus, Resolve, UpdateResult
from stanch.testing.decisions import decide
from stanch.testing.started import Started
from stanch.workflows.incident import ALERTS_PER_TASK, IncidentWorkflow
from tests.support.incidents import alert_event, incident_worker, open_incident, pile_up
from tests.support.plans import policy_file

PILED = 2 * ALERTS_PER_TASK + 500  # three workflow tasks' worth, the gateway's batches of 100


async def test_a_pile_of_alerts_is_applied_in_paced_tasks_in_order_and_none_is_lost(
    dev_env, task_queue, tmp_path, new_id, started: Started
):
    config = policy_file(tmp_path)
    async with incident_worker(dev_env, task_queue, config):
        incident = await open_incident(started, dev_env.client, task_queue, new_id())
        await eventually(lambda: _opened(incident), what="the incident")
    # No worker now: the storm's signals pile up in the history. The last one
    # resolves the first alert: applied out of order, a later Fired alert
    # would reopen the incident.
    pile = [alert_event(alert_id=f"piled-{i}") for i in range(PILED - 1)]
    pile.append(alert_event(alert_id="a1", condition=MonitorCondition.RESOLVED))
    await pile_up(incident, pile)

    async with incident_worker(dev_env, task_queue, config):
        state = await eventually(lambda: _counted(incident, PILED), timeout=60, what="the pile")
    assert state.status is IncidentStatus.RESOLVED  # the resolution came last, and counts last
    paces = [s async for s in _pace_timers(dev_env, incident)]
    assert len(paces) >= 2, "the pile was applied in one workflow task"
    assert not [e async for e in _failed_tasks(dev_env, incident)]


async def test_a_resolve_after_a_pile_counts_after_all_of_it(
    dev_env, task_queue, tmp_path, new_id, started: Started
):
    """bob resolves while the pile is still held: the pile came first, so its
    Fired alerts must not reopen what he resolved (they would, counted after)."""
    config = policy_file(tmp_path)
    async with incident_worker(dev_env, task_queue, config):
        incident = await open_incident(started, dev_env.client, task_queue, new_id())
        await eventually(lambda: _opened(incident), what="the incident")
    pile = [alert_event(alert_id=f"piled-{i}") for i in range(PILED)]
    await pile_up(incident, pile)
    resolving = asyncio.create_task(
        decide(incident, "resolve", Resolve(by="bob"), env=dev_env, result_type=UpdateResult)
    )
    await asyncio.sleep(0.5)  # the update waits for a worker, behind the pile
    async with incident_worker(dev_env, task_queue, config):
        resolved = await asyncio.wait_for(resolving, 60)
        state = (await incident.query(IncidentWorkflow.state)).state
    assert resolved.changed
    assert state.alert_count == PILED + 1
    assert state.status is IncidentStatus.RESOLVED, "the held alerts reopened the incident"


async def test_a_deadline_that_passed_meanwhile_waits_for_the_held_alerts(
    dev_env, task_queue, tmp_path, new_id, started: Started
):
    """A resolved incident's reopen window ends while no worker runs, and a
    Fired alert lies past the first task's worth of the pile: it reopens the
    incident, as it would have unpaced, instead of meeting it closed."""
    config = policy_file(tmp_path, incident={"reopen_window": "3s"})
    async with incident_worker(dev_env, task_queue, config):
        incident = await open_incident(started, dev_env.client, task_queue, new_id())
        await eventually(lambda: _opened(incident), what="the incident")
        await decide(incident, "resolve", Resolve(by="bob"), env=dev_env, result_type=UpdateResult)
    await asyncio.sleep(4)  # past the reopen window: closing is due
    quiet = [
        alert_event(alert_id=f"cleared-{i}", condition=MonitorCondition.RESOLVED)
        for i in range(ALERTS_PER_TASK + 100)
    ]
    pile = [*quiet, alert_event(alert_id="fired-again")]
    await pile_up(incident, pile)
    async with incident_worker(dev_env, task_queue, config):
        state = await eventually(lambda: _counted(incident, 2, open_=True), what="the reopen")
    assert state.status is IncidentStatus.TRIGGERED


async def _opened(incident: WorkflowHandle[Any, Any]) -> bool:
    view = await incident.query(IncidentWorkflow.state)
    return view.plan_loaded and view.state.alert_count == 1


async def _counted(
    incident: WorkflowHandle[Any, Any], firings: int, open_: bool = False
) -> IncidentState | None:
    """The state once `firings` Fired alerts count and the incident is open
    (or not): a Resolved alert is not a firing."""
    state = (await incident.query(IncidentWorkflow.state)).state
    return state if state.alert_count == firings and state.status.is_open is open_ else None


async def _runs(
    env: WorkflowEnvironment, incident: WorkflowHandle[Any, Any]
) -> AsyncIterator[HistoryEvent]:
    async for run in env.client.list_workflows(f'WorkflowId="{incident.id}"'):
        handle = env.client.get_workflow_handle(incident.id, run_id=run.run_id)
        async for event in handle.fetch_history_events():
            yield event


async def _pace_timers(
    env: WorkflowEnvironment, incident: WorkflowHandle[Any, Any]
) -> AsyncIterator[HistoryEvent]:
    async for event in _runs(env, incident):
        if event.HasField("timer_started_event_attributes") and "held alerts" in str(
            event.user_metadata
        ):
            yield event


async def _failed_tasks(
    env: WorkflowEnvironment, incident: WorkflowHandle[Any, Any]
) -> AsyncIterator[HistoryEvent]:
    async for event in _runs(env, incident):
        if event.HasField("workflow_task_failed_event_attributes"):
            yield event
