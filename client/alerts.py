"""Alerts into their incident: one incident per fingerprint, opened or joined by
signal-with-start (a Fired alert), told by plain signal (a Resolved one, which
never opens an incident). The gateway's intake, the benchmarks, the history
recorder and the tests all send alerts through here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from stanch.client.ids import workflow_id_for
from stanch.client.search_attributes import (
    INCIDENT_RESOURCES,
    INCIDENT_SEVERITY,
    INCIDENT_STATUS,
    searchable_resources,
)
from stanch.models.alert import AlertBatch, AlertEvent, CommonAlert, MonitorCondition
from stanch.models.incident import IncidentInput, IncidentState, IncidentStatus
from stanch.models.severity import DEFAULT_SEVERITY
from stanch.workflows.incident import IncidentWorkflow

NOTHING_TO_RESOLVE = "no open incident for this alert; nothing to resolve"


class IntakeResult(BaseModel):
    incident_id: str
    workflow_id: str
    deduplicated: bool  # the alert joined an incident that was already open
    condition: MonitorCondition
    note: str | None = None


# One per alert: where it went, or why it did not get there.
Recorded = IntakeResult | BaseException


async def record_alert(client: Client, task_queue: str, alert: CommonAlert) -> IntakeResult:
    """One alert on its own (history recording, scripts)."""
    return only(await record_alerts(client, task_queue, alert.fingerprint(), [alert.to_event()]))


async def record_alerts(
    client: Client, task_queue: str, incident_id: str, events: Sequence[AlertEvent]
) -> list[Recorded]:
    """Records `events` (one incident's, in arrival order) with at most two calls.

    Resolved alerts before the first Fired one go by plain signal: a resolution
    never opens an incident. From the first Fired alert on, everything goes by
    one signal-with-start, so the incident exists for what follows it. If the
    first call fails nothing was recorded and the error is raised, for every
    caller; if only the second fails, only its alerts get the error.
    """
    opener = next(
        (i for i, e in enumerate(events) if e.condition is MonitorCondition.FIRED), len(events)
    )
    recorded: list[Recorded] = []
    if opener > 0:
        recorded += await _resolve_open_incident(client, incident_id, events[:opener])
    if opener < len(events):
        try:
            recorded += await _open_or_join(client, task_queue, incident_id, events[opener:])
        except Exception as e:
            if opener == 0:
                raise
            recorded += [e] * (len(events) - opener)
    assert len(recorded) == len(events)
    return recorded


async def open_incident(
    client: Client,
    task_queue: str,
    incident_id: str,
    events: Sequence[AlertEvent],
    *,
    listed: bool = True,
) -> WorkflowHandle[IncidentWorkflow, IncidentState]:
    """Signal-with-start: opens the incident with `events`, or adds them to the
    one already open. `listed=False` leaves out the search attributes, for a
    server that has none registered (the time-skipping test server); such an
    incident is never listed, and never updates what it would be listed by."""
    first = events[0]
    severity = first.severity or DEFAULT_SEVERITY
    # A lone alert keeps the original signal: at low load histories look as
    # they always did, and workers that predate `add_alerts` still count it.
    signal, payload = (
        ("add_alert", first)
        if len(events) == 1
        else ("add_alerts", AlertBatch(alerts=list(events)))
    )
    listing = TypedSearchAttributes(
        [
            SearchAttributePair(INCIDENT_STATUS, str(IncidentStatus.TRIGGERED)),
            SearchAttributePair(INCIDENT_SEVERITY, str(severity)),
            SearchAttributePair(INCIDENT_RESOURCES, searchable_resources(first.targets)),
        ]
    )
    return await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(incident_id=incident_id, first_alert=first),
        id=workflow_id_for(incident_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=signal,
        start_signal_args=[payload],
        search_attributes=listing if listed else None,
        memo={"title": first.rule},
        static_summary=f"{severity} {first.rule}",
        # Set once, at start, from the alert that opened the incident: an
        # incident whose severity rises later keeps its first priority.
        priority=Priority(priority_key=severity.task_priority),
    )


async def _resolve_open_incident(
    client: Client, incident_id: str, events: Sequence[AlertEvent]
) -> list[Recorded]:
    workflow_id = workflow_id_for(incident_id)
    handle = client.get_workflow_handle_for(IncidentWorkflow.run, workflow_id)
    try:
        if len(events) == 1:
            await handle.signal(IncidentWorkflow.add_alert, events[0])
        else:
            await handle.signal(IncidentWorkflow.add_alerts, AlertBatch(alerts=list(events)))
    except RPCError as e:
        if e.status is not RPCStatusCode.NOT_FOUND:
            raise
        return [
            IntakeResult(
                incident_id=incident_id,
                workflow_id=workflow_id,
                deduplicated=False,
                condition=event.condition,
                note=NOTHING_TO_RESOLVE,
            )
            for event in events
        ]
    return [
        IntakeResult(
            incident_id=incident_id,
            workflow_id=workflow_id,
            deduplicated=True,
            condition=event.condition,
        )
        for event in events
    ]


async def _open_or_join(
    client: Client, task_queue: str, incident_id: str, events: Sequence[AlertEvent]
) -> list[Recorded]:
    handle = await open_incident(client, task_queue, incident_id, events)
    opened = _started_new_run(handle)
    return [
        IntakeResult(
            incident_id=incident_id,
            workflow_id=handle.id,
            # Only the alert that opened the incident is not a join.
            deduplicated=not (opened and i == 0),
            condition=event.condition,
        )
        for i, event in enumerate(events)
    ]


def only(recorded: Sequence[Recorded]) -> IntakeResult:
    """The one alert's outcome, raised if it failed."""
    (outcome,) = recorded
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _started_new_run(handle: WorkflowHandle[Any, Any]) -> bool:
    # SignalWithStartWorkflowExecutionResponse.started says whether this call
    # created the run. The SDK keeps the response but has no public accessor
    # for it yet, so read it defensively: unknown counts as "joined".
    response = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(response, "started", False))
