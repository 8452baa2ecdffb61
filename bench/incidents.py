"""Reading back what the load did: alert counts, signals in history, cleanup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from stanch.client.incidents import incident_handle
from stanch.models.incident import IncidentView
from stanch.workflows.incident import IncidentWorkflow


async def state(client: Client, incident_id: str) -> IncidentView:
    return await incident_handle(client, incident_id).query(IncidentWorkflow.state)


async def alert_counts(
    client: Client, incident_ids: Sequence[str], expected: int, timeout: float = 60
) -> dict[str, int]:
    """Each incident's alert count, once they add up to `expected` (the worker
    may still be applying accepted signals) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        counts: dict[str, int] = {}
        for incident_id in incident_ids:
            try:
                view = await state(client, incident_id)
                counts[incident_id] = view.state.alert_count
            except RPCError:
                counts[incident_id] = 0
        if sum(counts.values()) >= expected or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.5)


async def signals_received(client: Client, workflow_id: str) -> int:
    """Signal events in the incident's history, over every run (continue-as-new)."""
    latest = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
    started = latest[0].workflow_execution_started_event_attributes
    run_id: str | None = started.first_execution_run_id
    total = 0
    while run_id:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        events = [e async for e in handle.fetch_history_events()]
        total += sum(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in events
        )
        last = events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return total


async def terminate(client: Client, workflow_ids: Sequence[str]) -> None:
    """Stop what a run opened, so the next run meets an idle worker."""

    async def one(workflow_id: str) -> None:
        try:
            await client.get_workflow_handle(workflow_id).terminate("benchmark run finished")
        except RPCError:
            pass  # already closed

    for start in range(0, len(workflow_ids), 100):
        await asyncio.gather(*(one(w) for w in workflow_ids[start : start + 100]))
