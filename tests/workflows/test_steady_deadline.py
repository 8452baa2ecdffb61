"""An alert storm does not churn an incident's escalation timer (issue 15,
item 1): the run loop keeps the timer of its next page while the deadline
stays where it was, so every alert batch costs Temporal no timer cancel and
restart; and the page still fires on its deadline. On the time-skipping
server."""

from __future__ import annotations

import itertools
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.harness.waiting import eventually
from stanch.models.incident import Acknowledge, UpdateResult
from stanch.models.settings import Settings
from stanch.stores.page_file import read_pages
from stanch.testing.decisions import decide
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import alert_event, open_incident
from tests.support.plans import policy_file

REPEATS = 25


async def test_repeated_alerts_keep_the_timer_and_the_page_is_on_time(
    ts_env: WorkflowEnvironment, task_queue, tmp_path, new_id, started
):
    config = policy_file(tmp_path)  # tiers every 15 minutes: alice, bob, carol
    async with Worker(
        ts_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=tmp_path)),
    ):
        handle = await open_incident(started, ts_env.client, task_queue, new_id())
        for i in range(REPEATS):
            # One at a time, each in a workflow task of its own: every one wakes the run loop.
            await handle.signal(IncidentWorkflow.add_alert, alert_event(f"repeat-{i}"))

            async def counted(n: int = i + 2) -> bool:
                return (await handle.query(IncidentWorkflow.state)).state.alert_count == n

            await eventually(counted, 10, f"alert {i} counted")
        await ts_env.sleep(timedelta(minutes=20))  # tier 2 is due 15 minutes in
        timeline = await handle.query(IncidentWorkflow.timeline)
        # An acknowledgement moves the deadline away: that timer is cancelled.
        await decide(
            handle, "acknowledge", Acknowledge(by="bob"), env=ts_env, result_type=UpdateResult
        )
        events = [e async for e in handle.fetch_history_events()]

    kinds = [e.event_type for e in events]
    signals = kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert signals >= REPEATS
    # The tier 2 timer, then the tier 3 one: none restarted by an alert.
    assert kinds.count(EventType.EVENT_TYPE_TIMER_STARTED) == 2, kinds
    assert kinds.count(EventType.EVENT_TYPE_TIMER_CANCELED) <= 1
    assert [p["recipients"] for p in read_pages(tmp_path / "pages.jsonl")] == [["alice"], ["bob"]]
    paged_at = [e.at for e in timeline if e.kind in ("paged", "escalated")]
    (gap,) = [b - a for a, b in itertools.pairwise(paged_at)]
    # Within a loaded machine's slack (see test_escalation): the timer count
    # above is what shows no alert restarted the deadline.
    assert abs(gap - timedelta(minutes=15)) < timedelta(seconds=5), gap
