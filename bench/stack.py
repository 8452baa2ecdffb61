"""The processes a benchmark measures: a Temporal dev server, and per
benchmark a stanch worker and gateway (and azuresim where Azure is touched),
each its own OS process as in a deployment, so the Python services do not
share one interpreter with the load generator. The harness starts them all."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from stanch.azuresim.admin import SimAdmin
from stanch.client.connection import data_converter
from stanch.gateway.signing import DecisionSigner, new_private_key_text, parse_private_key
from stanch.harness.binaries import installed
from stanch.harness.dev_server import DevServer
from stanch.harness.plans import response_plan
from stanch.harness.ports import free_port
from stanch.harness.processes import Process
from stanch.harness.services import stanch_process
from stanch.harness.waiting import eventually, healthy
from stanch.harness.workers import worker_polling
from stanch.models.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-intake-token"
DECISION_KEY = new_private_key_text()
SIGNER = DecisionSigner(parse_private_key(DECISION_KEY))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The gateway's coalescing as shipped (Settings' defaults), unless a benchmark varies it.
SHIPPED_WINDOW_MS: float = Settings.model_fields["coalesce_window_ms"].default
SHIPPED_LINGER_MS: float = Settings.model_fields["coalesce_linger_ms"].default
# Services stop as on Ctrl-C: the worker drains, the gateway answers what it holds.
GRACEFULLY = signal.SIGINT


def rss_bytes(pid: int) -> int:
    """Resident set size from /proc (no psutil dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def connect(address: str) -> Client:
    # The stack's processes' converter: sealed when STANCH_PAYLOAD_KEYS_FILE is set.
    return await Client.connect(address, data_converter=data_converter(Settings()))


def bench_server(workdir: Path) -> DevServer:
    """`temporal server start-dev`, in memory and headless, with stanch's search attributes."""
    return DevServer(workdir, headless=True, in_memory=True, log_level="error")


def policy(pages: Path, **overrides: Any) -> dict[str, Any]:
    """A roster with two approvers, one long escalation policy, pages to a file."""
    defaults: dict[str, Any] = {
        "approvals": {"tiers": [{"timeout": "1h"}]},
        # Runbooks may change the web estate of examples/world.yaml (bench VMs join rg-web).
        "remediation": {
            "scopes": [
                {
                    "subscription": "00000000-0000-0000-0000-0000000000aa",
                    "resource_groups": ["rg-web"],
                }
            ]
        },
    }
    # A benchmark's own approvals (or scopes) replace these.
    return response_plan(pages, [{"people": ["alice"], "timeout": "1h"}], **defaults | overrides)


class Sim:
    """azuresim as its own process (`stanch sim`), and its admin client."""

    def __init__(self, workdir: Path, world: dict[str, Any]) -> None:
        self.workdir = workdir
        self.world = world
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.ca_file = workdir / "azuresim-ca.pem"
        self.process: Process | None = None
        self.admin: SimAdmin | None = None

    async def start(self) -> SimAdmin:
        self.workdir.mkdir(parents=True, exist_ok=True)
        world = self.workdir / "world.yaml"
        world.write_text(yaml.safe_dump(self.world))
        argv = [installed("stanch"), "sim", "--port", str(self.port), "--world", str(world)]
        self.process = Process(
            "azuresim",
            [*argv, "--state-dir", str(self.workdir)],
            log=self.workdir / "azuresim.log",
            cwd=ROOT,
        )
        await self.process.start()

        async def answering() -> SimAdmin | None:
            if not self.ca_file.exists():
                return None
            admin = SimAdmin(self.url, self.ca_file)
            try:
                await asyncio.to_thread(admin.journal)
            except Exception:
                admin.close()
                return None
            return admin

        try:
            self.admin = await eventually(answering, 30, "azuresim", every=0.1)
        except AssertionError:
            raise SystemExit(f"azuresim did not start; see {self.workdir}/azuresim.log") from None
        return self.admin

    async def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.process is not None:
            await self.process.stop(grace=15, sig=GRACEFULLY)


class Services:
    """A stanch worker and gateway on a fresh task queue, with their own policy
    file and state directory (audit log, pages, toggles)."""

    def __init__(
        self,
        server: DevServer,
        client: Client,
        workdir: Path,
        plan: dict[str, Any],
        sim: Sim | None = None,
        window_ms: float = SHIPPED_WINDOW_MS,
        linger_ms: float = SHIPPED_LINGER_MS,
    ) -> None:
        self.server = server
        self.client = client
        self.workdir = workdir
        self.plan = plan
        self.sim = sim
        self.window_ms = window_ms
        self.linger_ms = linger_ms
        self.task_queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.gateway_port = free_port()
        self.url = f"http://127.0.0.1:{self.gateway_port}"
        self.worker: Process | None = None
        self.gateway: Process | None = None

    @property
    def pages(self) -> Path:
        return self.workdir / "pages.jsonl"

    def settings(self) -> dict[str, Any]:
        """STANCH_* settings of this benchmark's worker and gateway."""
        settings: dict[str, Any] = {
            "temporal_address": self.server.address,
            "task_queue": self.task_queue,
            "config": self.workdir / "stanch.yaml",
            "alert_token": TOKEN,
            # The gateway signs people's decisions with it and the worker trusts
            # it; the bench's own approvals are signed with it too (SIGNER).
            "decision_key": DECISION_KEY,
            "coalesce_window_ms": self.window_ms,
            "coalesce_linger_ms": self.linger_ms,
        }
        # The worker's workflow task slots (STANCH_WORKER_WORKFLOW_TASK_SLOTS):
        # unset, the SDK's default. docs/benchmarks.md, section 4.
        slots = os.environ.get("STANCH_BENCH_WORKFLOW_SLOTS")
        if slots:
            settings["worker_workflow_task_slots"] = int(slots)
        # The worker's cache (STANCH_WORKER_CACHED_WORKFLOWS): unset, stanch's default.
        cached = os.environ.get("STANCH_BENCH_CACHED_WORKFLOWS")
        if cached:
            settings["worker_cached_workflows"] = int(cached)
        if self.sim is not None:
            settings.update(
                azure_endpoint=self.sim.url, azure_ca_file=self.sim.ca_file, azure_poll_seconds=0.2
            )
        return settings

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "stanch.yaml").write_text(yaml.safe_dump(self.plan))
        await self.restart_worker()
        await self.start_gateway(self.window_ms)

    async def restart_worker(self) -> None:
        """A fresh worker process (memory is measured from its idle start)."""
        if self.worker is not None:
            await self.worker.stop(grace=15, sig=GRACEFULLY)
        self.worker = stanch_process("worker", self.workdir, ["worker"], **self.settings())
        await self.worker.start()
        await self._until_up(
            self.worker, lambda pid: worker_polling(self.client, self.task_queue, pid)
        )

    async def start_gateway(self, window_ms: float, linger_ms: float | None = None) -> None:
        if self.gateway is not None:
            await self.gateway.stop(grace=15, sig=GRACEFULLY)
        self.window_ms = window_ms
        if linger_ms is not None:
            self.linger_ms = linger_ms
        args = ["gateway", "--host", "127.0.0.1", "--port", str(self.gateway_port)]
        self.gateway = stanch_process("gateway", self.workdir, args, **self.settings())
        await self.gateway.start()
        await self._until_up(self.gateway, lambda _: healthy(self.url))

    async def _until_up(self, process: Process, up: Callable[[int], Awaitable[bool]]) -> None:
        async def answering() -> bool:
            if not process.running:
                raise SystemExit(f"{process.name} did not start; see {process.log}")
            return await up(process.pid)

        try:
            await eventually(answering, 30, process.name)
        except AssertionError:
            raise SystemExit(f"{process.name} did not start; see {process.log}") from None

    def pids(self) -> dict[str, int]:
        assert self.worker is not None and self.gateway is not None
        found = {"server": self.server.pid, "worker": self.worker.pid, "gateway": self.gateway.pid}
        if self.sim is not None and self.sim.process is not None:
            found["azuresim"] = self.sim.process.pid
        return found

    async def stop(self) -> None:
        for process in (self.gateway, self.worker):
            if process is not None:
                await process.stop(grace=15, sig=GRACEFULLY)


@asynccontextmanager
async def running(
    server: DevServer,
    client: Client,
    workdir: Path,
    plan: dict[str, Any],
    world: dict[str, Any] | None = None,
    window_ms: float = SHIPPED_WINDOW_MS,
) -> AsyncIterator[Services]:
    sim = Sim(workdir / "azuresim", world) if world is not None else None
    services = Services(server, client, workdir, plan, sim, window_ms)
    try:
        if sim is not None:
            await sim.start()
        await services.start()
        yield services
    finally:
        await services.stop()
        if sim is not None:
            await sim.stop()
