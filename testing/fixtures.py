"""The fixtures of stanch's pytest plugin (testing/plugin.py says what each is)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.harness.dev_server import local_environment, time_skipping_environment
from stanch.models.settings import Settings
from stanch.testing.estate import WORLD
from stanch.testing.simulator import azure_clients, load_test_world, running_sim
from stanch.testing.started import Started
from stanch.testing.worker import (
    RunbookWorker,
    fresh_task_queue,
    policy_for,
    registered_workflows,
    running_worker,
)

WORLD_OPTION = "stanch_world"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(WORLD_OPTION, "azuresim world file for stanch_sim (relative to the rootdir)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stanch_world(path): the azuresim world file this test's stanch_sim serves"
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stanch_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await time_skipping_environment() as env:
        yield env


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stanch_dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with await local_environment() as env:
        yield env


@pytest.fixture
def stanch_world(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("stanch_world")
    given = marker.args[0] if marker is not None else request.config.getini(WORLD_OPTION)
    if not given:
        return WORLD
    return Path(request.config.rootpath, given)


@pytest.fixture
def stanch_sim(stanch_world: Path, tmp_path: Path) -> Iterator[AzureSim]:
    with running_sim(load_test_world(stanch_world), tmp_path / "azuresim") as sim:
        yield sim


@pytest_asyncio.fixture(loop_scope="session")
async def stanch_azure(stanch_sim: AzureSim) -> AsyncIterator[AzureClients]:
    async with azure_clients(stanch_sim) as clients:
        yield clients


@pytest.fixture
def stanch_policy(stanch_world: Path, tmp_path: Path) -> Path:
    return policy_for(tmp_path, load_test_world(stanch_world))


@pytest.fixture
def stanch_workflows() -> list[type]:
    return registered_workflows()


@pytest_asyncio.fixture(loop_scope="session")
async def stanch_started() -> AsyncIterator[Started]:
    handles = Started()
    yield handles
    await handles.terminate_all()


@pytest_asyncio.fixture(loop_scope="session")
async def stanch_worker(
    stanch_env: WorkflowEnvironment,
    stanch_azure: AzureClients,
    stanch_policy: Path,
    stanch_started: Started,
    tmp_path: Path,
) -> AsyncIterator[RunbookWorker]:
    settings = Settings(config=stanch_policy, state_dir=tmp_path, task_queue=fresh_task_queue())
    async with running_worker(stanch_env.client, settings, stanch_azure):
        yield RunbookWorker(stanch_env, settings, stanch_started)
