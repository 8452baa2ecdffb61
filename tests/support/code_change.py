"""A deploy while incidents run, in tests: the gateway alone, and workers
brought up one code version after another on its task queue."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.client.compatibility import deployed_workflows
from stanch.harness.ports import free_port
from stanch.models.settings import Settings
from tests.support.plans import REMEDIATION, policy_file
from tests.support.stack import Stack, gateway_at, stack_settings

REPO = Path(__file__).resolve().parents[2]  # `stanch` run from here imports tests.support
_TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
}


@asynccontextmanager
async def gateway_only(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, sim: AzureSim
) -> AsyncIterator[tuple[Stack, Settings]]:
    """The gateway with the REMEDIATION policy, and no worker: the test
    brings them up itself, one code version after the other."""
    token = secrets.token_urlsafe(16)
    port = free_port()
    config = policy_file(tmp_path, **REMEDIATION)
    settings = stack_settings(env, tmp_path, task_queue, config, token, port)
    async with gateway_at(settings, port) as url:
        stack = Stack(env.client, url, token, task_queue, config, tmp_path / "pages.jsonl", sim)
        yield stack, settings


@asynccontextmanager
async def deployed(
    env: WorkflowEnvironment, settings: Settings, azure: AzureClients, replacing: Sequence[type]
) -> AsyncIterator[None]:
    """A worker after a deploy of `replacing` (changed workflow classes under
    the names they replace): same task queue, same activities."""
    from stanch.worker import activities_for

    async with Worker(
        env.client,
        task_queue=settings.task_queue,
        workflows=deployed_workflows(replacing=replacing),
        activities=activities_for(settings, azure),
    ):
        yield


async def history_events(handle: WorkflowHandle[Any, Any], *, tasks_too: bool = True) -> int:
    """Without `tasks_too`, events other than workflow tasks: a failing
    workflow's retried task comes and goes at the end of its history."""
    return len(
        [
            e
            async for e in handle.fetch_history_events()
            if tasks_too or e.event_type not in _TASK_EVENTS
        ]
    )


def cli_state(directory: Path, settings: Settings, token: str) -> Path:
    """A state dir whose env file points the `stanch` command at this stack
    (Temporal for reading, the gateway for acting) with `token`."""
    directory.mkdir(exist_ok=True)
    (directory / "env").write_text(
        f"STANCH_TEMPORAL_ADDRESS={settings.temporal_address}\n"
        f"STANCH_GATEWAY_URL={settings.gateway_url}\n"
        f"STANCH_API_TOKEN={token}\n"
    )
    return directory
