"""From validated alerts to their incident: signal-with-start, one incident per
fingerprint, alerts that arrive together for one incident sent together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from stanch.gateway.coalesce import Coalescer
from stanch.models.alert import AlertBatch, AlertEvent, CommonAlert, MonitorCondition
from stanch.models.incident import IncidentInput, IncidentStatus
from stanch.models.severity import DEFAULT_SEVERITY
from stanch.workflows.incident import IncidentWorkflow, workflow_id_for
from stanch.workflows.search_attributes import (
    INCIDENT_RESOURCES,
    INCIDENT_SEVERITY,
    INCIDENT_STATUS,
    searchable_resources,
)

NOTHING_TO_RESOLVE = "no open incident for this alert; nothing to resolve"
# Refusals that come back the same however often the sender retries.
_FOREVER = {
    RPCStatusCode.INVALID_ARGUMENT,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.OUT_OF_RANGE,
}
_TOO_LARGE = ("size", "too large", "larger than max")
CAUSE_CHARS = 300


class IntakeResult(BaseModel):
    incident_id: str
    workflow_id: str
    deduplicated: bool  # the alert joined an incident that was already open
    condition: MonitorCondition
    note: str | None = None


Recorded = IntakeResult | BaseException


class AlertIntake:
    """The gateway's way in. With a window ≥ 0 an incident's alerts are
    coalesced (gateway/coalesce.py); a negative window sends each alert alone,
    as before coalescing existed."""

    def __init__(
        self, client: Callable[[], Awaitable[Client]], task_queue: str, window_ms: float
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._coalescer: Coalescer[AlertEvent, IntakeResult] | None = None
        if window_ms >= 0:
            self._coalescer = Coalescer(self._send, window=window_ms / 1000)

    async def record(self, alert: CommonAlert) -> IntakeResult:
        """Returns once the alert is durably in its incident's history."""
        event = alert.to_event()
        if self._coalescer is None:
            return _one(await self._send(alert.fingerprint(), [event]))
        # Sized as it will travel, so a batch stays under Temporal's payload limit.
        size = len(event.model_dump_json())
        return await self._coalescer.submit(alert.fingerprint(), event, size)

    async def _send(self, incident_id: str, events: list[AlertEvent]) -> Sequence[Recorded]:
        return await record_alerts(await self._client(), self._task_queue, incident_id, events)


async def record_alert(client: Client, task_queue: str, alert: CommonAlert) -> IntakeResult:
    """One alert on its own (history recording, scripts)."""
    return _one(await record_alerts(client, task_queue, alert.fingerprint(), [alert.to_event()]))


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


async def _resolve_open_incident(
    client: Client, incident_id: str, events: Sequence[AlertEvent]
) -> list[Recorded]:
    workflow_id = workflow_id_for(incident_id)
    handle = client.get_workflow_handle(workflow_id)
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
    first = events[0]
    # A lone alert keeps the original signal: at low load histories look as
    # they always did, and workers that predate `add_alerts` still count it.
    signal, payload = (
        ("add_alert", first)
        if len(events) == 1
        else ("add_alerts", AlertBatch(alerts=list(events)))
    )
    handle = await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(incident_id=incident_id, first_alert=first),
        id=workflow_id_for(incident_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=signal,
        start_signal_args=[payload],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(INCIDENT_STATUS, str(IncidentStatus.TRIGGERED)),
                SearchAttributePair(INCIDENT_SEVERITY, str(first.severity or DEFAULT_SEVERITY)),
                SearchAttributePair(INCIDENT_RESOURCES, searchable_resources(first.targets)),
            ]
        ),
        memo={"title": first.rule},
        static_summary=f"{first.severity or DEFAULT_SEVERITY} {first.rule}",
    )
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


def _one(recorded: Sequence[Recorded]) -> IntakeResult:
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


def lasting_refusal(error: BaseException) -> tuple[int, str] | None:
    """(HTTP status, cause) when Temporal refused the alert for a reason that
    retrying cannot fix; None when it may answer differently later (unavailable,
    timed out, throttled), which the sender should retry.

    Azure action groups retry a 5xx for hours: a 503 for an alert that can
    never be recorded hides it behind "retry later" forever."""
    if not isinstance(error, RPCError):
        return None
    said = error.message[:CAUSE_CHARS]
    too_large = any(word in said.lower() for word in _TOO_LARGE)
    if error.status is RPCStatusCode.RESOURCE_EXHAUSTED and "larger than max" in said:
        return 413, f"Temporal refused the alert as too large: {said}"
    if error.status in _FOREVER:
        if too_large:
            return 413, f"Temporal refused the alert as too large: {said}"
        return 422, f"Temporal refused the alert: {said}"
    return None
