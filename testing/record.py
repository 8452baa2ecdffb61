"""Recording a runbook's history, for replay tests: one run on the
time-skipping server against azuresim, every gate approved as a test approver
would approve it, saved as the JSON `replay_history` reads.

`stanch runbook record NAME --to DIR` and stanch's own tests/histories/record.py
both record through here. A recording writes `DIR/<file>.json` and nothing else:
it runs under the workflow id `<file>`, which is what a replay uses when no
`workflow_ids.json` beside it says otherwise."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from stanch.harness.dev_server import time_skipping_environment
from stanch.models.runbook import RunbookResult, RunbookView
from stanch.models.settings import Settings
from stanch.testing.decisions import approve
from stanch.testing.runbooks import start_runbook
from stanch.testing.simulator import azure_clients, load_test_world, resource_for, running_sim
from stanch.testing.started import Started
from stanch.testing.worker import fresh_task_queue, policy_for, registered_workflows, running_worker

# Who approves: approver-role holders of the test roster (runbooks.approval_plan).
APPROVERS = ("carol", "dave")
# Time skipped at once while a run waits on a timer of its own (never while a
# gate waits: a gate is approved as soon as it opens).
IDLE_SKIP = timedelta(minutes=1)
LONGEST_RUN = timedelta(days=1)  # of skipped time: a run still going then never ends


class RecordingFailed(Exception):
    """The run could not be recorded (no resource to run on, it never ended)."""


async def approve_every_gate(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], real_timeout: float = 120
) -> RunbookResult:
    """Drive a run to its end: each gate approved by enough test approvers the
    moment it opens; while it waits on a timer of its own, time is skipped a
    minute at a time (a gate's deadline never passes unanswered)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + real_timeout
    skipped = timedelta()
    while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
        if loop.time() > give_up or skipped > LONGEST_RUN:
            raise RecordingFailed(f"{handle.id} was still running; recorded nothing")
        if not await _idle(handle):  # first: a stuck run answers no query
            await asyncio.sleep(0.02)
            continue
        view: RunbookView = await handle.query("status", result_type=RunbookView)
        gate = view.pending
        if gate is not None:
            # An approver first, never the requester (the gate's eligible list
            # leaves them out at high risk), nobody twice.
            candidates = [p for p in (*APPROVERS, *gate.eligible) if p in gate.eligible]
            by = next((p for p in candidates if p not in gate.approvals), None)
            if by is None:
                raise RecordingFailed(f"{handle.id}: nobody left to approve {gate.step!r}")
            await approve(handle, gate.step, by, env=env, comment="recorded")
        else:
            await env.sleep(IDLE_SKIP)
            skipped += IDLE_SKIP
    result = await handle.result()
    assert isinstance(result, RunbookResult)
    return result


async def _idle(handle: WorkflowHandle[Any, Any]) -> bool:
    """Nothing in flight: the run waits on a timer (or a message). A workflow
    task that keeps failing (a bug in the procedure) ends the recording."""
    raw = (await handle.describe()).raw_description
    if raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt > 1:
        raise RecordingFailed(f"{handle.id} is stuck: {await _task_failure(handle)}")
    return not raw.pending_activities and not raw.HasField("pending_workflow_task")


async def _task_failure(handle: WorkflowHandle[Any, Any]) -> str:
    failure = "its workflow task keeps failing"
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_task_failed_event_attributes"):
            failure = event.workflow_task_failed_event_attributes.failure.message
    return failure


async def record_runbook(
    name: str,
    to: Path,
    *,
    world: Path | None = None,
    resource_id: str | None = None,
    params: dict[str, Any] | None = None,
    file: str | None = None,
    extra_workflows: Sequence[type] = (),
    dimensions: dict[str, str] | None = None,
) -> tuple[Path, RunbookResult]:
    """Record runbook `name` into `to/<file or name>.json`. It runs on
    `resource_id`, or the first resource of the world its spec matches, with
    the alert `dimensions` an incident would hand it (block_ip's address)."""
    stem = file or name
    workflows = registered_workflows(extra_workflows)
    specs = {w.spec.name: w.spec for w in workflows if hasattr(w, "spec")}
    if name not in specs:
        raise RecordingFailed(f"no runbook named {name!r} (known: {', '.join(sorted(specs))})")
    loaded = load_test_world(world)
    target = resource_id or resource_for(specs[name], loaded)
    if target is None:
        raise RecordingFailed(
            f"no resource of the world matches {name}'s spec.matches: give one with --resource"
        )
    with tempfile.TemporaryDirectory(prefix="stanch-record-") as scratch:
        directory = Path(scratch)
        settings = Settings(
            config=policy_for(directory, loaded),
            state_dir=directory,
            task_queue=fresh_task_queue(),
        )
        started = Started()
        with running_sim(loaded, directory / "azuresim") as sim:
            async with (
                azure_clients(sim) as azure,
                await time_skipping_environment() as env,
                running_worker(env.client, settings, azure, extra_workflows),
            ):
                try:
                    handle = await start_runbook(
                        started,
                        env.client,
                        settings.task_queue,
                        name,
                        target,
                        params=params,
                        incident_id=_incident_id(stem),
                        workflow_id=stem,
                        dimensions=dimensions,
                    )
                    result = await approve_every_gate(env, handle)
                    history = await handle.fetch_history()
                finally:
                    await started.terminate_all()
    return save_history(to, stem, history.to_json()), result


def _incident_id(stem: str) -> str:
    # Incident ids name Azure objects (locks, NSG rules): letters, digits, dashes.
    return ("rec-" + re.sub(r"[^A-Za-z0-9]+", "-", stem))[:40].rstrip("-")


def save_history(to: Path, stem: str, text: str) -> Path:
    to.mkdir(parents=True, exist_ok=True)
    path = to / f"{stem}.json"
    path.write_text(text)
    return path
