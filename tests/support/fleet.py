"""A fleet on five hosts of one machine (tests/support/netns.py), every process
started as production would start it, `stanch ...` with STANCH_* settings:

    core      the Temporal dev server, PostgreSQL (STANCH_DATABASE_URL), Azurite (evidence)
    worker-1  `stanch worker`
    worker-2  `stanch worker`
    gateways  two `stanch gateway` processes; people's commands (`stanch toggle`) run here
    azure     `stanch sim` (azuresim over TLS, its certificate naming its address)

The test itself runs on the machine (10.213.0.1), as Azure Monitor and the
operator's laptop would: it posts alerts to the gateways over the bridge.

Each host has a folder of its own and nothing else on disk: its state dir, its
copy of the policy, of azuresim's CA and of its logs. Shared facts reach a
process only through its settings (the database, the Blob container, the
fleet's audit and decision keys), so a per-host file store showing up in any
host's folder is a finding (`per_host_stores`)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import yaml
from azure.storage.blob import ContainerClient
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from stanch.azuresim import load_world
from stanch.azuresim.admin import SimAdmin
from stanch.azuresim.world import SeedResource
from stanch.client.incidents import fetch_incident
from stanch.harness.azurite import Azurite, install_azurite
from stanch.harness.binaries import installed
from stanch.harness.dev_server import DevServer
from stanch.harness.postgres import PostgresServer
from stanch.harness.processes import Process
from stanch.harness.services import stanch_env, stanch_process
from stanch.harness.waiting import eventually, healthy
from stanch.harness.workers import worker_polling
from stanch.testing.decisions import TEST_DECISION_KEY
from stanch.testing.estate import WORLD
from tests.support.azurite import fresh_container
from tests.support.chaos_estate import (
    BINDING,
    STORAGE,
    applied_mutations,
    approval_pending,
    chaos_vm,
    health_alert,
)
from tests.support.netns import TEST_RANGE, Host, Network, network, tcp_open
from tests.support.plans import API_TOKENS, REMEDIATION, policy_file
from tests.support.postgres import AUDIT_KEY

CORE, WORKER_1, WORKER_2, GATEWAYS, AZURE = (
    Host("core", 10),
    Host("worker-1", 21),
    Host("worker-2", 22),
    Host("gateways", 30),
    Host("azure", 40),
)
HOSTS = [CORE, WORKER_1, WORKER_2, GATEWAYS, AZURE]

# Every host has its own address, so every server keeps its usual port.
TEMPORAL_PORT, POSTGRES_PORT, AZURITE_PORT, SIM_PORT, METRICS_PORT = 7233, 5432, 10000, 8443, 9464
GATEWAY_PORTS = (8080, 8081)
TASK_QUEUE = "fleet"
DATABASE = "stanch"
CHAOS_VMS = 16  # vm-chaos-0000.. in rg-chaos, failing: quarantine_vm's targets
# How long azuresim's VM power operations take: long enough to cut a worker
# off in the middle of one and have the other take it over (heartbeat timeout).
OPERATION_SECONDS = 30.0

# Which process wrote each audit record, as PostgreSQL saw it: the address of
# the connection that inserted the row. The test's own instrument, beside
# stanch's schema; the chain and its verification never read it.
AUDIT_WRITERS = """
CREATE TABLE fleet_audit_writers (seq bigint PRIMARY KEY, client inet);
CREATE FUNCTION fleet_note_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fleet_audit_writers VALUES (NEW.seq, inet_client_addr());
    RETURN NEW;
END $$;
CREATE TRIGGER fleet_note_writer AFTER INSERT ON audit_records
    FOR EACH ROW EXECUTE FUNCTION fleet_note_writer();
"""

# What a process would keep in its state dir had it not been given the shared
# stores: the audit chain, the kill switch, postmortems, evidence.
FILE_STORES = (
    "audit.db",
    "audit.key",
    "audit.checkpoints",
    "toggles.json",
    "postmortems",
    "evidence",
)


P = TypeVar("P", bound=Process)


def on_host(host: Host, process: P) -> P:
    """The same process, started on `host` (same pid: `ip netns exec` execs it)."""
    process.argv = host.run_here(process.argv)
    return process


@dataclass
class Fleet:
    net: Network
    root: Path
    token: str
    database_url: str
    sim_url: str
    evidence: dict[str, str]
    processes: dict[str, Process] = field(default_factory=dict)
    client: Client | None = None
    admin: SimAdmin | None = None
    postgres: PostgresServer | None = None
    evidence_container: ContainerClient | None = None
    vms_used: int = 0

    def fresh_vms(self, count: int) -> list[int]:
        """Failing VMs no test has touched yet (quarantine changes them)."""
        assert self.vms_used + count <= CHAOS_VMS, "give the world more failing VMs"
        self.vms_used += count
        return list(range(self.vms_used - count, self.vms_used))

    # ---- where things are ------------------------------------------------------

    def folder(self, host: Host) -> Path:
        return self.root / host.name

    @property
    def workers(self) -> list[Process]:
        return [self.processes["worker-1"], self.processes["worker-2"]]

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://{GATEWAYS.address}:{port}" for port in GATEWAY_PORTS]

    @property
    def temporal(self) -> Client:
        assert self.client is not None
        return self.client

    @property
    def sim(self) -> SimAdmin:
        assert self.admin is not None
        return self.admin

    def settings(self, host: Host, **more: Any) -> dict[str, Any]:
        """STANCH_* settings of a process on `host` (state dir aside)."""
        folder = self.folder(host)
        return {
            "temporal_address": f"{CORE.address}:{TEMPORAL_PORT}",
            "task_queue": TASK_QUEUE,
            "config": folder / "stanch.yaml",
            "alert_token": self.token,
            "decision_key": TEST_DECISION_KEY,
            "database_url": self.database_url,
            "audit_key": AUDIT_KEY,
            "azure_endpoint": self.sim_url,
            "azure_ca_file": folder / "azuresim-ca.pem",
            "azure_poll_seconds": 0.5,
            "gateway_url": self.gateway_urls[0],
            **self.evidence,
            **more,
        }

    def worker_of(self, identity: str) -> str | None:
        """Which worker host an SDK identity (`<pid>@<hostname>`) is."""
        for name in ("worker-1", "worker-2"):
            if identity.startswith(f"{self.processes[name].pid}@"):
                return name
        return None

    # ---- people's commands, run on a host -------------------------------------

    async def stanch(
        self, host: Host, *args: str, timeout: float = 60, **more: Any
    ) -> subprocess.CompletedProcess[str]:
        """`stanch <args>` on `host`, with that host's settings."""
        folder = self.folder(host)
        argv = host.run_here([installed("stanch"), "--state-dir", str(folder), *args])
        env = stanch_env(state_dir=folder, **self.settings(host, **more))
        return await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, env=env, timeout=timeout
        )

    # ---- what the shared stores hold -------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql.encode(), params or None)
            return cursor.fetchall() if cursor.description else []

    def audit_writers(self) -> dict[str, int]:
        """Host name -> audit records its processes inserted."""
        names = {host.address: host.name for host in HOSTS}
        rows = self.query("SELECT host(client), count(*) FROM fleet_audit_writers GROUP BY 1")
        return {names.get(str(client), str(client)): int(n) for client, n in rows}

    def files(self, host: Host) -> list[str]:
        """What is in the host's folder (its whole disk, as far as stanch knows)."""
        folder = self.folder(host)
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    def per_host_stores(self) -> dict[str, list[str]]:
        """Host name -> file stores found in its folder (none expected)."""
        found = {}
        for host in HOSTS:
            here = [name for name in FILE_STORES if (self.folder(host) / name).exists()]
            if here:
                found[host.name] = here
        return found

    async def journal(self, since: int = 0) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sim.journal, since)

    async def last_seq(self) -> int:
        calls = await self.journal()
        return int(calls[-1]["seq"]) if calls else 0


# ---- bringing it up ---------------------------------------------------------------


def fleet_world(path: Path) -> Path:
    """examples/world.yaml, failing VMs for quarantine_vm, slow power operations."""
    world = load_world(WORLD)
    world.operation_seconds = OPERATION_SECONDS
    world.resources += [
        SeedResource(
            id=chaos_vm(i),
            tags={"service": "web", "env": "fleet"},
            health="Unavailable",
            health_summary="The virtual machine is unresponsive (fleet test).",
        )
        for i in range(CHAOS_VMS)
    ]
    path.write_text(yaml.safe_dump(world.model_dump(mode="json")))
    return path


def fleet_policy(folder: Path) -> Path:
    """The policy, one copy per host: people's tokens, quarantine_vm bound to
    the failing VMs, an approver needed for it, pages to this host's file."""
    return policy_file(
        folder,
        access=REMEDIATION["access"],
        approvals={"tiers": [{"timeout": "4h"}]},
        runbooks=[BINDING],
    )


ADMIN_TOKEN = API_TOKENS["admin"]
APPROVER_TOKEN = API_TOKENS["approver"]


@contextlib.asynccontextmanager
async def running_fleet(root: Path) -> AsyncIterator[Fleet]:
    """The network, then every server and process; all of it stopped and
    removed when the block ends, however it ends."""
    async with contextlib.AsyncExitStack() as stack:
        net = stack.enter_context(network(HOSTS))
        for host in HOSTS:
            (root / host.name).mkdir(parents=True, exist_ok=True)
        fleet = Fleet(
            net,
            root,
            token=secrets.token_urlsafe(16),
            database_url=f"postgresql://postgres@{CORE.address}:{POSTGRES_PORT}/{DATABASE}",
            sim_url=f"https://{AZURE.address}:{SIM_PORT}",
            evidence={},
        )
        await start_core(fleet, stack)
        await start_azure(fleet, stack)
        for host in (WORKER_1, WORKER_2, GATEWAYS):
            folder = fleet.folder(host)
            fleet_policy(folder)
            shutil.copy(fleet.folder(AZURE) / "azuresim-ca.pem", folder / "azuresim-ca.pem")
        upgraded = await fleet.stanch(GATEWAYS, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr + upgraded.stdout
        await asyncio.to_thread(fleet.query, AUDIT_WRITERS)
        await start_services(fleet, stack)
        yield fleet


async def start_core(fleet: Fleet, stack: contextlib.AsyncExitStack) -> None:
    folder = fleet.folder(CORE)
    postgres = PostgresServer(
        host=CORE.address,
        port=POSTGRES_PORT,
        launcher=CORE.run_here([]),
        clients=TEST_RANGE,
    )
    stack.callback(postgres.remove)
    fleet.postgres = postgres
    await asyncio.to_thread(postgres.start)
    await asyncio.to_thread(postgres.create_database, DATABASE)

    # All of the core host's addresses (its own and loopback): `start-dev --ip
    # ADDR` binds its internal services to ADDR but dials them on 127.0.0.1.
    temporal = on_host(
        CORE, DevServer(folder, host="0.0.0.0", port=TEMPORAL_PORT, headless=True, in_memory=True)
    )
    await start(fleet, stack, "temporal", temporal)
    address = f"{CORE.address}:{TEMPORAL_PORT}"
    fleet.client = await temporal.connect(
        connect=lambda: Client.connect(address, data_converter=pydantic_data_converter)
    )

    await asyncio.to_thread(install_azurite)
    azurite = on_host(CORE, Azurite(folder, host=CORE.address, port=AZURITE_PORT))
    await start(fleet, stack, "azurite", azurite)
    await azurite.ready()
    container = await asyncio.to_thread(fresh_container, azurite)
    fleet.evidence_container = container
    fleet.evidence = {
        "evidence_url": f"{azurite.account_url}/{container.container_name}",
        "evidence_connection_string": azurite.connection_string,
    }


async def start_azure(fleet: Fleet, stack: contextlib.AsyncExitStack) -> None:
    folder = fleet.folder(AZURE)
    world = fleet_world(folder / "world.yaml")
    args = ["sim", "--host", AZURE.address, "--port", str(SIM_PORT), "--world", str(world)]
    await start(fleet, stack, "azuresim", on_host(AZURE, stanch_process("azuresim", folder, args)))
    ca = folder / "azuresim-ca.pem"
    await eventually(
        lambda: _answers(AZURE.address, SIM_PORT, ca), 60, "azuresim on its host", every=0.1
    )
    fleet.admin = SimAdmin(fleet.sim_url, ca)
    stack.callback(fleet.admin.close)


async def _answers(address: str, port: int, ca: Path) -> bool:
    return ca.exists() and await asyncio.to_thread(tcp_open, address, port)


async def start_services(fleet: Fleet, stack: contextlib.AsyncExitStack) -> None:
    for host in (WORKER_1, WORKER_2):
        settings = fleet.settings(host, metrics_address=f"{host.address}:{METRICS_PORT}")
        worker = stanch_process(host.name, fleet.folder(host), ["worker"], **settings)
        await start(fleet, stack, host.name, on_host(host, worker))
    settings = fleet.settings(GATEWAYS)
    for n, port in enumerate(GATEWAY_PORTS, 1):
        args = ["gateway", "--host", GATEWAYS.address, "--port", str(port)]
        gateway = stanch_process(f"gateway-{n}", fleet.folder(GATEWAYS), args, **settings)
        await start(fleet, stack, f"gateway-{n}", on_host(GATEWAYS, gateway))
    await serving(fleet, timeout=90)


async def serving(fleet: Fleet, timeout: float = 60, since: float = 0) -> None:
    """Both gateways healthy, both workers polling (since `since`)."""
    for url in fleet.gateway_urls:
        await eventually(partial(healthy, url), timeout, f"the gateway at {url}", every=0.2)
    for worker in fleet.workers:
        polling = partial(worker_polling, fleet.temporal, TASK_QUEUE, worker.pid, since)
        await eventually(polling, timeout, f"{worker.name} polling", every=0.2)


async def start(
    fleet: Fleet, stack: contextlib.AsyncExitStack, name: str, process: Process
) -> None:
    fleet.processes[name] = process
    stack.push_async_callback(process.stop, 10)
    await process.start()


async def fleet_healthy(fleet: Fleet) -> None:
    """Where each test starts, whatever the one before it did: every link up,
    PostgreSQL up, every process running and serving."""
    for host in HOSTS:
        fleet.net.restore(host)
    assert fleet.postgres is not None
    if not await asyncio.to_thread(lambda: fleet.postgres is not None and fleet.postgres.running):
        await asyncio.to_thread(fleet.postgres.start)
    for name, process in fleet.processes.items():
        assert process.running, f"{name} exited ({process.returncode}):\n{process.tail()}"
    await serving(fleet)


# ---- alerts, as Azure Monitor sends them --------------------------------------------


@dataclass
class Delivery:
    """One alert's trip: every answer it got, in order (Azure retries a 5xx)."""

    alert_id: str
    rule: str
    gateway: int
    answers: list[int] = field(default_factory=list)
    retry_after: list[str | None] = field(default_factory=list)
    incident_id: str | None = None
    opened: bool = False  # the 202 said it opened the incident (not a join)

    @property
    def accepted(self) -> bool:
        return self.incident_id is not None

    @property
    def audit_key(self) -> str:
        return f"alert/{self.alert_id.lower()}/Fired"


async def deliver(
    http: httpx.AsyncClient,
    fleet: Fleet,
    body: dict[str, Any],
    gateway: int,
    *,
    retry_5xx_for: float = 0,
    answers: Counter[int] | None = None,
) -> Delivery:
    """POSTs `body` to gateway number `gateway` until it is accepted (202), or
    once when `retry_5xx_for` is 0. A retry waits half a second, not the
    Retry-After Azure would honour: the test has minutes, not hours."""
    essentials = body["data"]["essentials"]
    trip = Delivery(essentials["alertId"], essentials["alertRule"], gateway)
    deadline = time.monotonic() + retry_5xx_for
    url = f"{fleet.gateway_urls[gateway]}/alerts"
    while True:
        response = await http.post(url, json=body, params={"token": fleet.token})
        trip.answers.append(response.status_code)
        if answers is not None:
            answers[response.status_code] += 1
        trip.retry_after.append(response.headers.get("Retry-After"))
        if response.status_code == 202:
            answer = response.json()
            trip.incident_id, trip.opened = answer["incident_id"], not answer["deduplicated"]
            return trip
        if response.status_code < 500 or time.monotonic() > deadline:
            return trip
        await asyncio.sleep(0.5)


async def storm(
    fleet: Fleet,
    bodies: list[dict[str, Any]],
    senders: int,
    *,
    retry_5xx_for: float = 0,
    sent: asyncio.Event | None = None,
    sent_after: int = 0,
) -> list[Delivery]:
    """Every body delivered by `senders` concurrent senders, alternating
    between the two gateways; `sent` is set once `sent_after` were accepted."""
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for n, body in enumerate(bodies):
        queue.put_nowait((n, body))
    trips: list[Delivery] = []

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            n, body = queue.get_nowait()
            trips.append(await deliver(http, fleet, body, n % 2, retry_5xx_for=retry_5xx_for))
            if sent is not None and sum(t.accepted for t in trips) >= sent_after:
                sent.set()

    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(sender(http) for _ in range(senders)))
    return trips


async def steady_storm(
    fleet: Fleet,
    prefix: str,
    fingerprints: int,
    senders: int,
    stop: asyncio.Event,
    answers: Counter[int],
    *,
    retry_5xx_for: float,
    pause: float = 0.02,
) -> list[Delivery]:
    """Alerts over `fingerprints` incidents from `senders` senders, alternating
    gateways, until `stop` is set; each one retried on a 5xx as Azure would.
    `answers` counts every answer as it comes; each sender pauses `pause` s
    between alerts (a storm, not a benchmark: the machine is shared)."""
    rules = [f"{prefix}-{uuid.uuid4().hex[:6]}-{n}" for n in range(fingerprints)]
    trips: list[Delivery] = []
    count = 0

    async def sender(http: httpx.AsyncClient) -> None:
        nonlocal count
        while not stop.is_set():
            n, count = count, count + 1
            body = health_alert(STORAGE, rules[n % fingerprints])
            trip = await deliver(
                http, fleet, body, n % 2, retry_5xx_for=retry_5xx_for, answers=answers
            )
            trips.append(trip)
            await asyncio.sleep(pause)

    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(sender(http) for _ in range(senders)))
    return trips


def alert_bodies(prefix: str, fingerprints: int, alerts: int) -> list[dict[str, Any]]:
    """`alerts` alerts (each its own alertId) over `fingerprints` incidents
    about a resource no runbook is bound to."""
    rules = [f"{prefix}-{uuid.uuid4().hex[:6]}-{n}" for n in range(fingerprints)]
    return [health_alert(STORAGE, rules[n % fingerprints]) for n in range(alerts)]


async def alert_counts(fleet: Fleet, trips: list[Delivery]) -> dict[str, tuple[int, int]]:
    """Incident -> (alerts accepted for it, alerts it counts), once every
    incident has caught up with its 202s (the worker applies the signals after
    them), or as they are after a while."""
    accepted = Counter(t.incident_id for t in trips if t.incident_id is not None)

    async def counted() -> dict[str, int]:
        return {
            i: (await fetch_incident(fleet.temporal, i)).view.state.alert_count for i in accepted
        }

    async def caught_up() -> dict[str, int] | None:
        now = await counted()
        return now if all(now[i] >= n for i, n in accepted.items()) else None

    try:
        seen = await eventually(caught_up, 60, "incidents counting their alerts", every=0.5)
    except AssertionError:
        seen = await counted()
    return {i: (n, seen[i]) for i, n in accepted.items()}


def missing_from_audit(fleet: Fleet, trips: list[Delivery]) -> list[str]:
    """Accepted alerts whose `alert received` record is not in the chain."""
    keys = [t.audit_key for t in trips if t.accepted]
    found = {k for (k,) in fleet.query("SELECT key FROM audit_records WHERE key = ANY(%s)", keys)}
    return [k for k in keys if k not in found]


# ---- runbooks on the fleet ----------------------------------------------------------


async def open_quarantines(fleet: Fleet, vms: list[int], drill: str = "fleet-vm") -> list[str]:
    """An incident per failing VM, opened through the gateways in turn; each
    one's quarantine_vm waits at its approval gate before its first change.
    Each alert's rule is `drill` and the VM: a new drill about the same VMs
    opens new incidents instead of joining the last drill's."""
    async with httpx.AsyncClient(timeout=60) as http:
        trips = [
            await deliver(http, fleet, health_alert(chaos_vm(vm), f"{drill}-{vm:04d}"), vm % 2)
            for vm in vms
        ]
    incidents = []
    for trip in trips:
        assert trip.incident_id is not None, trip
        incidents.append(trip.incident_id)
    for incident in incidents:
        pending = partial(approval_pending, fleet.temporal, incident)
        await eventually(pending, 60, f"incident {incident} waiting for approval", every=0.2)
    return incidents


async def approve_isolation(fleet: Fleet, incident: str, gateway: int) -> None:
    """carol (an approver) says yes through a gateway's on-call API."""
    url = f"{fleet.gateway_urls[gateway]}/api/incidents/{incident}/approvals/isolate/approve"
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(
            url,
            json={"comment": "fleet test"},
            headers={"Authorization": f"Bearer {APPROVER_TOKEN}"},
        )
    assert answer.status_code == 200, answer.text


@dataclass
class Attempt:
    """An activity's attempt that started, as its workflow's history keeps it."""

    worker: str  # the worker host that took it (or the identity, if no worker's)
    attempt: int
    at: float  # epoch seconds


async def activity_attempts(fleet: Fleet, workflow_id: str, activity: str) -> list[Attempt]:
    """The recorded attempts of `activity` in the workflow (Temporal records
    an attempt when it ends: the one that completed, or failed for good)."""
    scheduled: dict[int, str] = {}
    ran = []
    handle = fleet.temporal.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if scheduled.get(started.scheduled_event_id) == activity:
                worker = fleet.worker_of(started.identity) or started.identity
                at = event.event_time.ToDatetime().replace(tzinfo=UTC).timestamp()
                ran.append(Attempt(worker, started.attempt, at))
    return ran


async def activity_workers(fleet: Fleet, workflow_id: str, activity: str) -> list[str]:
    """The worker hosts that ran `activity` in the workflow."""
    return [a.worker for a in await activity_attempts(fleet, workflow_id, activity)]


def writes_to(calls: list[dict[str, Any]], names: list[str]) -> Counter[tuple[str, str]]:
    """The writes azuresim applied to anything named by one of `names`."""
    mine = [c for c in calls if any(n.lower() in c["path"].lower() for n in names)]
    return applied_mutations(mine)


async def activities_running(host: Host) -> float | None:
    """Activity slots in use on a worker host, from its Prometheus metrics
    (None while they cannot be read)."""
    url = f"http://{host.address}:{METRICS_PORT}/metrics"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            text = (await http.get(url)).text
    except httpx.HTTPError:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("temporal_worker_task_slots_used") and "ActivityWorker" in line
    ]
    return sum(values) if values else None
