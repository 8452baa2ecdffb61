"""azuresim for tests: a world (the packaged default, or a team's own file)
served over TLS on a free port, and the worker's real Azure SDK clients
pointed at it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim, World, load_world
from stanch.models.config import alert_matches
from stanch.models.runbook import RunbookSpec
from stanch.models.settings import Settings
from stanch.testing.estate import WORLD

# Long enough that a runbook really polls an operation, short enough for tests.
OPERATION_SECONDS = 0.3


def load_test_world(path: Path | None = None) -> World:
    """The world at `path` (the packaged default without one), its power
    operations shortened for tests."""
    world = load_world(path or WORLD)
    world.operation_seconds = OPERATION_SECONDS
    return world


@contextlib.contextmanager
def running_sim(world: World, directory: Path) -> Iterator[AzureSim]:
    """azuresim serving `world`, its CA in `directory`; stopped on exit."""
    simulator = AzureSim(world, state_dir=directory).start()
    try:
        yield simulator
    finally:
        simulator.stop()


@contextlib.asynccontextmanager
async def azure_clients(sim: AzureSim) -> AsyncIterator[AzureClients]:
    """The SDK clients a worker uses, trusting azuresim's CA, polling fast."""
    clients = AzureClients(
        Settings(azure_endpoint=sim.url, azure_ca_file=sim.ca_file, azure_poll_seconds=0.05)
    )
    try:
        yield clients
    finally:
        await clients.close()


def resource_for(spec: RunbookSpec, world: World) -> str | None:
    """The first resource of `world` that the runbook's own `matches` names
    (its resource groups, types and ids: a recording has no alert to match
    rules or monitoring services against)."""
    match = spec.matches.model_copy(update={"rules": [], "monitoring_services": []})
    for resource in world.resources:
        if alert_matches(match, "", [resource.id]):
            return resource.id
    return None
