"""A runbook under an incident never waits for its reports (issue 15, item 2):
its steps go on while the reports travel, and the incident's timeline still
tells every step, in order. On the dev server, through the gateway: an alert
opens the incident, quarantine_vm runs, an approver approves over HTTP."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle

from stanch.client.incidents import fetch_incident
from stanch.harness.waiting import eventually
from stanch.models.incident import IncidentStatus
from stanch.models.runbook import StepStatus
from tests.support.plans import auth
from tests.support.stack import Stack

ALERT = Path(__file__).resolve().parents[2] / "examples" / "demo" / "vm-web-1-unavailable.json"
ACKED = EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED
TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
# What can wake a runbook's workflow task (updates leave no event before theirs).
WAKES = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_TIMER_FIRED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    ACKED,
}
TOLD = {"runbook:step_succeeded", "runbook:step_approved", "runbook:step_failed"}
ENDED = {StepStatus.SUCCEEDED, StepStatus.APPROVED, StepStatus.FAILED}


async def test_a_runbook_goes_on_while_its_reports_travel(stack: Stack):
    body = json.loads(ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"vm-down-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        incident = (await stack.post_alert(http, body)).json()["incident_id"]

        async def waiting() -> bool:
            return bool((await fetch_incident(stack.client, incident)).view.state.pending_approvals)

        await eventually(waiting, 60, "the runbook at its gate, known to the incident")
        approved = await http.post(
            f"{stack.url}/api/incidents/{incident}/approvals/isolate/approve",
            json={},
            headers=auth("approver"),
        )
        assert approved.status_code == 200, approved.text

        async def contained() -> bool:
            state = (await fetch_incident(stack.client, incident)).view.state
            return state.status is IncidentStatus.CONTAINED

        await eventually(contained, 60, "the incident contained")

    detail = await fetch_incident(stack.client, incident)
    view = detail.view.state.runbook
    assert view is not None and view.outcome is not None
    runbook = stack.client.get_workflow_handle(view.workflow_id)
    events = [e async for e in runbook.fetch_history_events()]

    # Every step's activity was scheduled by a workflow task that something
    # other than a report's acknowledgement woke: no step waited on a report.
    woken_by = _what_woke_each_task(events)
    waited = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and woken_by[e.activity_task_scheduled_event_attributes.workflow_task_completed_event_id]
        == {ACKED}
        and e.activity_task_scheduled_event_attributes.activity_type.name != "page_on_call"
    ]
    assert waited == [], f"steps scheduled only once a report was acknowledged: {waited}"
    reports = sum(
        e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
        for e in events
    )
    assert 0 < reports < len(view.steps) * 2, "reports travel together, not one per line"

    # ...and the incident was still told every step, in the order they ended.
    told = [e.summary for e in detail.timeline if e.kind in TOLD]
    ended = [f"[{view.runbook}] {s.name}: {s.status}" for s in view.steps if s.status in ENDED]
    assert len(told) == len(ended) and len(ended) >= 4, (told, ended)
    assert all(t.startswith(e) for t, e in zip(told, ended, strict=True)), (told, ended)
    await _closed(runbook)


def _what_woke_each_task(events: list[HistoryEvent]) -> dict[int, set[int]]:
    """For each completed workflow task (by its completed event's id), the
    kinds of event that arrived since the task before it completed: what woke it."""
    woken: dict[int, set[int]] = {}
    since: set[int] = set()
    for event in events:
        if event.event_type == TASK_COMPLETED:
            woken[event.event_id], since = since, set()
        elif event.event_type in WAKES:
            since.add(event.event_type)
    return woken


async def _closed(handle: WorkflowHandle[Any, Any]) -> None:
    await handle.result()
