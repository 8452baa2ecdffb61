"""A grant's expiry survives its worker (issue 16, item 1: "also across
restarts"). On the dev server, in real time: a vendor is granted logs for 20
seconds, the only worker stops, the expiry passes with no worker running (the
durable timer fires in Temporal, nothing can act), and a worker started
afterwards revokes the access at once: one DELETE, as azuresim's journal shows.
(The time-skipping tests cover the expiry itself; this is the restart.)"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.harness.waiting import eventually
from stanch.models.access_grant import GrantStatus
from stanch.models.runbook import RunbookOutcome, RunbookResult
from stanch.models.settings import Settings
from stanch.testing.decisions import approve
from stanch.testing.started import Started
from stanch.testing.worker import until_gate
from stanch.worker import build_worker
from tests.support.access import (
    access_policy_file,
    ask_for_access,
    assignments,
    end_incident,
    guest_logs,
    guest_reads_logs,
    role_assignment_writes,
    until_status,
)
from tests.support.incidents import open_incident

HELD = timedelta(seconds=20)
# A worker that starts after the expiry revokes within this: its first poll,
# the replay of the grant's history and one DELETE (about 6 s measured on two
# shared cores). Without a durable timer it would never revoke at all.
PROMPTLY = 15.0


async def test_a_grant_that_expires_while_no_worker_runs_is_revoked_when_one_starts(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    azure: AzureClients,
    sim: AzureSim,
    started: Started,
    new_id: Any,
) -> None:
    settings = Settings(
        config=access_policy_file(tmp_path), state_dir=tmp_path, task_queue=task_queue
    )
    incident = new_id()
    sim.journal.clear()
    async with guest_logs(sim) as vendor:
        async with build_worker(dev_env.client, settings, azure):
            await open_incident(started, dev_env.client, task_queue, incident)
            grant = await ask_for_access(dev_env, task_queue, incident, duration=HELD)
            handle = started.add(
                dev_env.client.get_workflow_handle(grant.workflow_id, result_type=RunbookResult)
            )
            await until_gate(handle, f"access-{grant.grant_id}")
            await approve(handle, f"access-{grant.grant_id}", "carol", env=dev_env)
            active = await until_status(handle, GrantStatus.ACTIVE)
            assert await guest_reads_logs(vendor)
            # Holding: the expiry's timer is in the history (ACTIVE is answered
            # a workflow task earlier, while it still tells the incident).
            await eventually(
                lambda: _expiry_timer(handle, EventType.EVENT_TYPE_TIMER_STARTED),
                20,
                "the expiry timer started",
            )
        # The worker has stopped: nothing of stanch runs now.
        assert active.expires_at is not None and active.granted_at is not None

        await eventually(
            lambda: _expiry_timer(handle, EventType.EVENT_TYPE_TIMER_FIRED),
            HELD.total_seconds() + 30,
            "the expiry timer fired",
        )
        assert datetime.now(UTC) >= active.expires_at
        assert await guest_reads_logs(vendor), "no worker ran, so nothing was revoked yet"
        assert role_assignment_writes(sim) == [("PUT", 201)]

        restarted = time.monotonic()
        async with build_worker(dev_env.client, settings, azure):
            revoked = await until_status(handle, GrantStatus.REVOKED, timeout=PROMPTLY)
            took = time.monotonic() - restarted
            result = await asyncio.wait_for(handle.result(), PROMPTLY)
            assert result.outcome is RunbookOutcome.RELEASED
            await end_incident(dev_env.client, incident)
        assert not await guest_reads_logs(vendor)

    assert took < PROMPTLY
    assert revoked.revoked_because == "expired after 20s"
    assert assignments(sim) == []
    assert role_assignment_writes(sim) == [("PUT", 201), ("DELETE", 200)]
    print(f"revoked {took:.1f}s after the worker started again")


async def _expiry_timer(handle: Any, wanted: EventType.ValueType) -> bool:
    """The grant's expiry timer (the one started for what is left of its 20
    seconds) has an event of type `wanted` (started, or fired)."""
    started: set[int] = set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            lasting = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            if HELD - timedelta(seconds=5) < lasting <= HELD:
                started.add(event.event_id)
                if wanted == EventType.EVENT_TYPE_TIMER_STARTED:
                    return True
        elif event.event_type == wanted == EventType.EVENT_TYPE_TIMER_FIRED:
            if event.timer_fired_event_attributes.started_event_id in started:
                return True
    return False
