"""Dead workers are noticed in seconds: a long Azure activity heartbeats while
it waits (activities/heartbeats.py), and the runbook kit schedules it with a
20 s heartbeat timeout, so a worker killed mid-activity has the activity
retried by another worker within about that, not after the step's 10-minute
start-to-close timeout; and the retry resumes the operation Azure accepted
rather than sending it again.

Real processes: the dev server, two `stanch worker` processes on one task
queue, azuresim over TLS whose VM restarts take a minute (as Azure's do)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from stanch.activities.heartbeats import heartbeating
from stanch.azuresim import AzureSim, load_world
from stanch.harness.processes import Process
from stanch.harness.waiting import eventually
from stanch.harness.workers import worker_polling
from stanch.models.risk import Risk
from stanch.models.runbook import RunbookView, StepStatus
from stanch.testing.estate import VM2, WORLD
from stanch.testing.runbooks import approval_plan, journal_mutations, start_runbook
from stanch.workflows.runbook._kit import CHANGE_TIMEOUT, HEARTBEAT
from tests.support.chaos import stanch_process
from tests.support.plans import policy_file

# Long enough that the killed worker's restart is still under way when the
# other worker takes the activity over (the heartbeat timeout and a retry).
RESTART_SECONDS = 45
RETRY_INTERVAL = timedelta(seconds=2)  # the kit's AZURE_RETRY.initial_interval


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[AzureSim]:
    """azuresim whose VM power operations stay InProgress for RESTART_SECONDS."""
    world = load_world(WORLD)
    world.operation_seconds = RESTART_SECONDS
    simulator = AzureSim(world, state_dir=tmp_path / "azuresim").start()
    yield simulator
    simulator.stop()


async def restart_in_flight(handle: WorkflowHandle) -> PendingActivityInfo | None:
    described = await handle.describe()
    for pending in described.raw_description.pending_activities:
        if pending.activity_type.name == "restart_vm":
            return pending
    return None


@pytest.mark.devserver
async def test_a_killed_workers_activity_is_retried_elsewhere_within_the_heartbeat_timeout(
    dev_env, slow_sim, tmp_path, task_queue, started
):
    settings = {
        "temporal_address": dev_env.client.service_client.config.target_host,
        "task_queue": task_queue,
        "config": policy_file(tmp_path),
        "azure_endpoint": slow_sim.url,
        "azure_ca_file": slow_sim.ca_file,
        "azure_poll_seconds": 0.5,
    }
    workers: list[Process] = []
    for name in ("worker-a", "worker-b"):
        directory = tmp_path / name
        directory.mkdir()
        workers.append(stanch_process(name, directory, ["worker"], **settings))
    try:
        for worker in workers:
            await worker.start()
        for worker in workers:
            polling = partial(worker_polling, dev_env.client, task_queue, worker.pid)
            await eventually(polling, 60, f"{worker.name} polling")
        handle = await start_runbook(
            started,
            dev_env.client,
            task_queue,
            "restart_vm",
            VM2,
            plan=approval_plan(auto_approve=[Risk.LOW, Risk.MEDIUM]),
        )

        # Azure accepted the restart, and the operation's token reached the
        # server as a heartbeat: the activity is in the middle of its wait.
        async def waiting_on_azure() -> PendingActivityInfo | None:
            pending = await restart_in_flight(handle)
            accepted = [m for m in journal_mutations(slow_sim) if m[0] == "POST"]
            return pending if pending and pending.heartbeat_details.payloads and accepted else None

        first = await eventually(waiting_on_azure, 60, "restart_vm heartbeating its token")
        assert first.attempt == 1
        holder = next(w for w in workers if first.last_worker_identity.startswith(f"{w.pid}@"))
        other = next(w for w in workers if w is not holder)

        killed = time.monotonic()
        await holder.kill()

        async def retried_elsewhere() -> PendingActivityInfo | None:
            pending = await restart_in_flight(handle)
            taken = (
                pending is not None
                and pending.attempt >= 2
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            )
            return pending if taken else None

        retry = await eventually(retried_elsewhere, 90, "restart_vm retried", every=0.2)
        taken_over = time.monotonic() - killed
        print(f"\nrestart_vm taken over by another worker {taken_over:.1f} s after kill -9")
        assert retry.last_worker_identity.startswith(f"{other.pid}@")
        assert retry.attempt == 2
        # Noticed by the heartbeat timeout, not the start-to-close timeout.
        assert taken_over < (HEARTBEAT + RETRY_INTERVAL).total_seconds() + 10
        assert taken_over < CHANGE_TIMEOUT.total_seconds() / 10

        async def restarted() -> bool:
            view = await handle.query("status", result_type=RunbookView)
            step = next((s for s in view.steps if s.name == "restart"), None)
            return step is not None and step.status is StepStatus.SUCCEEDED

        await eventually(restarted, RESTART_SECONDS + 30, "the restart step succeeded")
        # One restart: the retry resumed the operation Azure had accepted.
        assert [m for m, _ in journal_mutations(slow_sim)] == ["POST"]
    finally:
        for worker in workers:
            await worker.stop(grace=5)


# ---- the helper itself ------------------------------------------------------------


async def test_a_wait_heartbeats_its_details_until_it_is_over():
    beats: list[tuple] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    @activity.defn
    async def waits_on_azure() -> str:
        operation = asyncio.sleep(0.5, "done")  # stands for poller.result()
        return await heartbeating(operation, "token", every=timedelta(seconds=0.1))

    assert await env.run(waits_on_azure) == "done"
    assert len(beats) >= 4, beats  # one at once, then one every 0.1 s
    assert set(beats) == {("token",)}


async def test_a_cancelled_activity_stops_waiting_on_azure():
    """Temporal cancels an activity through a heartbeat's answer (the workflow
    gave up, or the server timed the attempt out): the wait goes with it."""
    env = ActivityEnvironment()
    operation_cancelled = asyncio.Event()

    async def operation() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            operation_cancelled.set()
            raise

    @activity.defn
    async def waits_on_azure() -> None:
        await heartbeating(operation(), every=timedelta(seconds=0.05))

    running = asyncio.create_task(env.run(waits_on_azure))
    env.on_heartbeat = lambda *details: env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.wait_for(operation_cancelled.wait(), 5)  # not left running
