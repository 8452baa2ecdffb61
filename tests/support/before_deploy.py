"""An incident open across a deploy: what the stuck-on-a-code-change tests
(tests/client/test_stuck.py, tests/gateway/test_stuck_incident.py) set up
before they bring up changed code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.client.ids import workflow_id_for
from stanch.models.settings import Settings
from tests.support.code_change import deployed, gateway_only
from tests.support.incidents import settled
from tests.support.oncall import open_vm_incident
from tests.support.plans import auth
from tests.support.stack import Stack


@dataclass(frozen=True)
class OpenIncident:
    stack: Stack  # the gateway alone: no worker runs until `deploy`
    settings: Settings
    incident: str
    handle: WorkflowHandle[Any, Any]  # the incident's workflow
    runbook: WorkflowHandle[Any, Any]  # quarantine_vm, waiting at its gate
    env: WorkflowEnvironment
    azure: AzureClients

    @property
    def base(self) -> str:
        return f"{self.stack.url}/api/incidents/{self.incident}"

    def deploy(self, replacing: Sequence[type]) -> AbstractAsyncContextManager[None]:
        """A worker of the changed code (`replacing`) on the incident's task queue."""
        return deployed(self.env, self.settings, self.azure, replacing)


@asynccontextmanager
async def open_before_deploy(
    env: WorkflowEnvironment, tmp_path: Path, task_queue: str, azure: AzureClients, sim: AzureSim
) -> AsyncIterator[OpenIncident]:
    """vm-web-1's incident opened by today's code, its runbook at its gate,
    both with nothing in flight that new code would be woken by; that worker
    is gone when this yields. The incident is terminated at the end."""
    from stanch.worker import build_worker

    async with gateway_only(env, tmp_path, task_queue, sim) as (stack, settings):
        async with httpx.AsyncClient(timeout=30) as http, build_worker(env.client, settings, azure):
            incident = await open_vm_incident(stack, http)
            handle = env.client.get_workflow_handle(workflow_id_for(incident))
            url = f"{stack.url}/api/incidents/{incident}"
            state = (await http.get(url, headers=auth("viewer"))).json()["state"]
            runbook = env.client.get_workflow_handle(state["runbook"]["workflow_id"])
            await settled(runbook)
            await settled(handle)
        try:
            yield OpenIncident(stack, settings, incident, handle, runbook, env, azure)
        finally:
            await handle.terminate("test done")
