"""The processes a benchmark measures: a Temporal dev server, and per
benchmark a stanch worker and gateway (and azuresim where Azure is touched),
each its own OS process as in a deployment, so the Python services do not
share one interpreter with the load generator."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from stanch.azuresim.admin import SimAdmin
from stanch.client.search_attributes import SEARCH_ATTRIBUTES
from stanch.gateway.signing import DecisionSigner, new_private_key_text, parse_private_key

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-intake-token"
DECISION_KEY = new_private_key_text()
SIGNER = DecisionSigner(parse_private_key(DECISION_KEY))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def executable(name: str) -> str:
    """A console script of this environment, even when PATH lacks its bin dir."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise SystemExit(f"{name} is not installed: pip install -e '.[dev]'")
    return found


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


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(args, stdout=out, stderr=out, env=env, cwd=ROOT)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def connect(address: str) -> Client:
    return await Client.connect(address, data_converter=pydantic_data_converter)


class DevServer:
    """`temporal server start-dev`, in memory, with stanch's search attributes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None

    async def start(self) -> Client:
        args = [
            executable("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--headless",
            "--log-level",
            "error",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        self.process = spawn(args, self.workdir / "temporal.log")
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client = await connect(self.address)
                return self.client
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"temporal dev server did not start; see {self.workdir}"
                    ) from None
                await asyncio.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def policy(pages: Path, **overrides: Any) -> dict[str, Any]:
    """A roster with two approvers, one long escalation policy, pages to a file."""
    data: dict[str, Any] = {
        "roster": [
            {"id": "alice", "name": "Alice"},
            {"id": "bob", "name": "Bob"},
            {"id": "carol", "name": "Carol", "roles": ["approver"]},
            {"id": "dave", "name": "Dave", "roles": ["approver"]},
        ],
        "escalation_policies": {
            "default": {
                "tiers": [{"people": ["alice"], "timeout": "1h"}],
                "after_last_tier": "stop",
            }
        },
        "channels": [{"name": "pager", "type": "file", "path": str(pages)}],
        "incident": {"reopen_window": "30m"},
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
    data.update(overrides)
    return data


class Sim:
    """azuresim as its own process (`stanch sim`), and its admin client."""

    def __init__(self, workdir: Path, world: dict[str, Any]) -> None:
        self.workdir = workdir
        self.world = world
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.ca_file = workdir / "azuresim-ca.pem"
        self.process: subprocess.Popen[bytes] | None = None
        self.admin: SimAdmin | None = None

    async def start(self) -> SimAdmin:
        self.workdir.mkdir(parents=True, exist_ok=True)
        world = self.workdir / "world.yaml"
        world.write_text(yaml.safe_dump(self.world))
        args = [executable("stanch"), "sim", "--port", str(self.port), "--world", str(world)]
        self.process = spawn(
            [*args, "--state-dir", str(self.workdir)], self.workdir / "azuresim.log"
        )
        for _ in range(300):
            if self.ca_file.exists():
                try:
                    self.admin = SimAdmin(self.url, self.ca_file)
                    self.admin.journal()
                    return self.admin
                except Exception:
                    pass
            await asyncio.sleep(0.1)
        raise SystemExit(f"azuresim did not start; see {self.workdir}/azuresim.log")

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.process is not None:
            stop_process(self.process)


class Services:
    """A stanch worker and gateway on a fresh task queue, with their own policy
    file and state directory (audit log, pages, toggles)."""

    def __init__(
        self,
        server: DevServer,
        workdir: Path,
        plan: dict[str, Any],
        sim: Sim | None = None,
        window_ms: float = 0.0,
    ) -> None:
        self.server = server
        self.workdir = workdir
        self.plan = plan
        self.sim = sim
        self.window_ms = window_ms
        self.task_queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.gateway_port = free_port()
        self.url = f"http://127.0.0.1:{self.gateway_port}"
        self.worker: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None

    @property
    def pages(self) -> Path:
        return self.workdir / "pages.jsonl"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STANCH_", "OTEL_"))}
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            STANCH_TEMPORAL_ADDRESS=self.server.address,
            STANCH_TASK_QUEUE=self.task_queue,
            STANCH_CONFIG=str(self.workdir / "stanch.yaml"),
            STANCH_ALERT_TOKEN=TOKEN,
            # The gateway signs people's decisions with it and the worker trusts
            # it; the bench's own approvals are signed with it too (SIGNER).
            STANCH_DECISION_KEY=DECISION_KEY,
            STANCH_STATE_DIR=str(self.workdir),
            STANCH_COALESCE_WINDOW_MS=str(self.window_ms),
        )
        if self.sim is not None:
            env.update(
                STANCH_AZURE_ENDPOINT=self.sim.url,
                STANCH_AZURE_CA_FILE=str(self.sim.ca_file),
                STANCH_AZURE_POLL_SECONDS="0.2",
            )
        return env

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "stanch.yaml").write_text(yaml.safe_dump(self.plan))
        await self.restart_worker()
        await self.start_gateway(self.window_ms)

    async def restart_worker(self) -> None:
        """A fresh worker process (memory is measured from its idle start)."""
        if self.worker is not None:
            stop_process(self.worker)
        args = [executable("stanch"), "worker", "--state-dir", str(self.workdir)]
        self.worker = spawn(args, self.workdir / "worker.log", self.env())
        await self._wait_for_worker()

    async def start_gateway(self, window_ms: float) -> None:
        if self.gateway is not None:
            stop_process(self.gateway)
        self.window_ms = window_ms
        args = [executable("stanch"), "gateway", "--host", "127.0.0.1"]
        args += ["--port", str(self.gateway_port), "--state-dir", str(self.workdir)]
        self.gateway = spawn(args, self.workdir / "gateway.log", self.env())
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                with suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                if self.gateway.poll() is not None:
                    break
                await asyncio.sleep(0.1)
        raise SystemExit(f"gateway did not start; see {self.workdir}/gateway.log")

    async def _wait_for_worker(self) -> None:
        assert self.server.client is not None and self.worker is not None
        request = DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        for _ in range(300):
            described = await self.server.client.workflow_service.describe_task_queue(request)
            # The server lists recent pollers, a stopped worker's too: wait for this one.
            if any(p.identity.startswith(f"{self.worker.pid}@") for p in described.pollers):
                return
            if self.worker.poll() is not None:
                break
            await asyncio.sleep(0.1)
        raise SystemExit(f"worker did not start; see {self.workdir}/worker.log")

    def pids(self) -> dict[str, int]:
        assert self.worker is not None and self.gateway is not None
        found = {"server": self.server.pid, "worker": self.worker.pid, "gateway": self.gateway.pid}
        if self.sim is not None and self.sim.process is not None:
            found["azuresim"] = self.sim.process.pid
        return found

    def stop(self) -> None:
        for process in (self.gateway, self.worker):
            if process is not None:
                stop_process(process)


@asynccontextmanager
async def running(
    server: DevServer,
    workdir: Path,
    plan: dict[str, Any],
    world: dict[str, Any] | None = None,
    window_ms: float = 0.0,
) -> AsyncIterator[Services]:
    sim = Sim(workdir / "azuresim", world) if world is not None else None
    services = Services(server, workdir, plan, sim, window_ms)
    try:
        if sim is not None:
            await sim.start()
        await services.start()
        yield services
    finally:
        services.stop()
        if sim is not None:
            sim.stop()
