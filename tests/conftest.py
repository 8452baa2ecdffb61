"""Fixtures only: real Temporal servers from the installed wheels (through the
harness), azuresim over TLS, a worker on a fresh task queue, the real stack
behind the gateway, and the workflows a test started. What tests share by
name lives in tests/support/."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim, load_world
from stanch.harness.dev_server import local_environment, time_skipping_environment
from stanch.harness.postgres import PostgresServer, running_postgres
from stanch.models.settings import Settings
from stanch.stores.select import close_databases

# Sets STANCH_DECISION_KEY before any Settings() is built: every gateway the
# tests start signs people's decisions with it, every worker trusts it.
from stanch.testing import decisions  # noqa: F401
from stanch.testing.estate import WORLD
from stanch.testing.started import Started
from tests.support.before_deploy import OpenIncident, open_before_deploy
from tests.support.encryption import (
    WEB_UI,
    encrypted_stack,
    terminate_sealed,
    write_payload_keys,
)
from tests.support.plans import REMEDIATION, policy_file
from tests.support.postgres import new_database
from tests.support.stack import CONTINUE_AS_NEW_AFTER, Stack, running_stack
from tests.support.webhooks import Receiver, running_receiver


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    """What the test started; terminated when it ends."""
    handles = Started()
    yield handles
    await handles.terminate_all()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture
def new_id() -> Callable[[], str]:
    return lambda: uuid.uuid4().hex[:20]


@pytest.fixture(scope="module")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test module: a workflow one module leaves
    behind can keep the server's time skipping locked, and on a server shared
    by the session the next module's tests then waited in real time (the
    full suite hung in random order; the access-grant tests showed it)."""
    async with await time_skipping_environment() as env:
        yield env


@pytest.fixture
async def own_ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server for one test, for modules whose tests move its
    clock by hours (env.sleep): on a module's shared server that sometimes
    waited in real time until the call timed out, as if an earlier test had
    left time skipping locked (test_access_grant, then test_maintenance in
    CI-like runs). About a second per test."""
    async with await time_skipping_environment() as env:
        yield env


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server, where visibility and search attributes exist. A low
    history limit makes every long-lived incident continue-as-new for real."""
    limit = f"limit.historyCount.suggestContinueAsNew={CONTINUE_AS_NEW_AFTER}"
    async with await local_environment(["--dynamic-config-value", limit]) as env:
        yield env


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stanch's wheel, built once from this checkout (without build isolation)
    for every test that installs it somewhere clean, whichever xdist worker
    runs it."""
    from tests.support.packaging import shared_wheel

    return shared_wheel(tmp_path_factory.getbasetemp())


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[AzureSim]:
    """azuresim over TLS, seeded with examples/world.yaml, fresh for each test."""
    world = load_world(WORLD)
    world.operation_seconds = 0.3
    simulator = AzureSim(world, state_dir=tmp_path / "azuresim").start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the run (Debian's server, a random port)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database of the test's own, at this release's schema; the
    stores this process opened on it are closed when the test ends."""
    yield new_database(postgres)
    close_databases()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook endpoint on loopback that keeps what it receives."""
    yield from running_receiver()


@pytest.fixture
async def azure(sim: AzureSim) -> AsyncIterator[AzureClients]:
    """The worker's real Azure SDK clients, pointed at azuresim."""
    clients = AzureClients(
        Settings(azure_endpoint=sim.url, azure_ca_file=sim.ca_file, azure_poll_seconds=0.05)
    )
    yield clients
    await clients.close()


@pytest.fixture
async def runbooks(
    ts_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, azure: AzureClients
) -> AsyncIterator[Settings]:
    """A worker with every workflow and runbook on the time-skipping server, its
    activities against azuresim; the settings say its task queue and state dir."""
    from stanch.worker import WORKFLOWS, activities_for

    settings = Settings(config=policy_file(tmp_path), state_dir=tmp_path, task_queue=task_queue)
    async with Worker(
        ts_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, azure),
    ):
        yield settings


@pytest.fixture
def stack_policy(tmp_path: Path) -> Path:
    """The policy `stack` runs with; a module overrides this fixture for another."""
    return policy_file(tmp_path, **REMEDIATION)


@pytest.fixture
def stack_payload_keys() -> dict[str, bytes] | None:
    """None: `stack` sends plain payloads. A module overrides this fixture with
    {key id: key} to have it seal them (tests/support/encryption.py)."""
    return None


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    azure: AzureClients,
    sim: AzureSim,
    stack_policy: Path,
    stack_payload_keys: dict[str, bytes] | None,
) -> AsyncIterator[Stack]:
    parts = (dev_env, tmp_path, task_queue, stack_policy, azure, sim)
    if stack_payload_keys is None:
        running = running_stack(*parts)
    else:
        keys = write_payload_keys(tmp_path / "payload-keys.json", stack_payload_keys)
        running = encrypted_stack(*parts, keys, codec_cors_origins=WEB_UI)
    try:
        async with running as stack:
            yield stack
    finally:
        if stack_payload_keys is not None:
            await terminate_sealed(dev_env.client, task_queue)


@pytest.fixture
async def before_deploy(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    azure: AzureClients,
    sim: AzureSim,
) -> AsyncIterator[OpenIncident]:
    """The gateway alone, and an incident a worker opened and left: the
    stuck-on-a-code-change tests deploy changed code under it."""
    async with open_before_deploy(dev_env, tmp_path, task_queue, azure, sim) as opened:
        yield opened
