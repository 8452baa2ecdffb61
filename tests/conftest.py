"""Shared fixtures: real Temporal servers from the installed wheels, a response
plan written to a temporary stanch.yaml, and a worker on a fresh task queue."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

# Sets STANCH_DECISION_KEY before any Settings() is built: every gateway the
# tests start signs people's decisions with it, every worker trusts it.
import tests.decision_helpers  # noqa: F401

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alerts"


def policy_file(tmp_path: Path, **overrides: Any) -> Path:
    """A three-tier plan: alice, then bob, then carol, 15 minutes each."""
    data: dict[str, Any] = {
        "roster": [
            {"id": "alice", "name": "Alice"},
            {"id": "bob", "name": "Bob"},
            {"id": "carol", "name": "Carol", "roles": ["approver"]},
            {"id": "dave", "name": "Dave", "roles": ["approver"]},
        ],
        "escalation_policies": {
            "default": {
                "tiers": [
                    {"people": ["alice"], "timeout": "15m"},
                    {"people": ["bob"], "timeout": "15m"},
                    {"people": ["carol"], "timeout": "15m"},
                ],
                "after_last_tier": "stop",
            }
        },
        "channels": [{"name": "pager", "type": "file", "path": str(tmp_path / "pages.jsonl")}],
        "incident": {"reopen_window": "30m"},
        # Runbooks may change what azuresim's world and the chaos estate hold;
        # tests of the scopes themselves pass their own.
        "remediation": {
            "scopes": [{"subscription": SUB, "resource_groups": ["rg-web", "rg-chaos"]}]
        },
    }
    data.update(overrides)
    path = tmp_path / "stanch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def installed(name: str) -> str:
    """A console script of this environment, even when PATH lacks .venv/bin."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} not installed: pip install -e '.[dev]'"
    return found


# Workflows a test started. Left running, they would keep scheduling work for
# workers that are gone, and the time-skipping server does not skip time past
# pending work: the next test would hang.
STARTED: list[Any] = []


@pytest.fixture(autouse=True)
async def terminate_what_the_test_started() -> AsyncIterator[None]:
    yield
    while STARTED:
        handle = STARTED.pop()
        try:
            await handle.terminate("test finished")
        except Exception:
            pass


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed("temporal-test-server"),
        data_converter=pydantic_data_converter,
    ) as env:
        yield env


@pytest.fixture
def new_id() -> Callable[[], str]:
    return lambda: uuid.uuid4().hex[:20]


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server, where visibility and search attributes exist. A low
    history limit makes every long-lived incident continue-as-new for real."""
    from stanch.client import search_attributes

    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={CONTINUE_AS_NEW_AFTER}",
        ],
    ) as env:
        yield env


CONTINUE_AS_NEW_AFTER = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """A worker and the HTTP gateway on a fresh task queue of the dev server."""

    client: Client
    url: str
    token: str
    task_queue: str
    config: Path
    pages: Path
    sim: Any

    async def post_alert(self, http: httpx.AsyncClient, body: Any, **kw: Any) -> httpx.Response:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        params = kw.pop("params", {"token": self.token})
        return await http.post(f"{self.url}/alerts", content=content, params=params, **kw)


API_TOKENS = {  # at least 32 characters, as the policy requires
    "viewer": "tok-bob-viewer-4c1d7e0a9b2f6e35d8",
    "responder": "tok-alice-responder-8f3a6b1c0d9e2",
    "approver": "tok-carol-approver-5e2b9d7c3a0f14",
    "admin": "tok-dave-admin-0b6e4a8d2c7f3915ae",
}
REMEDIATION = {
    "access": {
        "tokens": [
            {"person": "bob", "role": "viewer", "token": API_TOKENS["viewer"]},
            {"person": "alice", "role": "responder", "token": API_TOKENS["responder"]},
            {"person": "carol", "role": "approver", "token": API_TOKENS["approver"]},
            {"person": "dave", "role": "admin", "token": API_TOKENS["admin"]},
        ]
    },
    "approvals": {"tiers": [{"timeout": "15m"}]},
    "runbooks": [
        {"runbook": "quarantine_vm", "match": {"resource_ids": ["*/virtualmachines/vm-web-*"]}}
    ],
}


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, azure: Any, sim: Any
) -> AsyncIterator[Stack]:
    from stanch.models.settings import Settings
    from stanch.worker import build_worker

    config = policy_file(tmp_path, **REMEDIATION)
    token = secrets.token_urlsafe(16)
    port = free_port()
    settings = Settings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        config=config,
        alert_token=SecretStr(token),
        state_dir=tmp_path,
        gateway_url=f"http://127.0.0.1:{port}",
    )
    async with build_worker(dev_env.client, settings, azure), gateway_at(settings, port) as url:
        yield Stack(dev_env.client, url, token, task_queue, config, tmp_path / "pages.jsonl", sim)


@asynccontextmanager
async def gateway_at(settings: Any, port: int) -> AsyncIterator[str]:
    """The real gateway (uvicorn) on loopback, healthy before the test goes on."""
    from stanch.gateway.server import serve_gateway

    stop = asyncio.Event()
    serving = asyncio.create_task(serve_gateway(settings, "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    try:
        yield url
    finally:
        stop.set()
        await serving


WORLD = Path(__file__).resolve().parents[1] / "examples" / "world.yaml"
SUB = "00000000-0000-0000-0000-0000000000aa"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-web"
VM1 = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-1"
VM2 = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-2"
NIC1 = f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-web-1-nic"
WORKSPACE = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Any]:
    """azuresim over TLS, seeded with examples/world.yaml, fresh for each test."""
    from stanch.azuresim import AzureSim, load_world

    world = load_world(WORLD)
    world.operation_seconds = 0.3
    simulator = AzureSim(world, state_dir=tmp_path / "azuresim").start()
    yield simulator
    simulator.stop()


@pytest.fixture
async def azure(sim: Any) -> AsyncIterator[Any]:
    """The worker's real Azure SDK clients, pointed at azuresim."""
    from stanch.activities.azure_clients import AzureClients
    from stanch.models.settings import Settings

    clients = AzureClients(
        Settings(azure_endpoint=sim.url, azure_ca_file=sim.ca_file, azure_poll_seconds=0.05)
    )
    yield clients
    await clients.close()


VMSS = f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-api"
