"""A worker for tests: stanch's workflows, every installed runbook (stanch's,
and the team's from their `stanch.runbooks` entry points) and every activity
(with the `stanch.activities` ones), against azuresim, with a policy whose
remediation scopes cover the simulated estate."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import World
from stanch.harness.plans import response_plan
from stanch.models.runbook import PendingApproval, RunbookView
from stanch.models.settings import Settings
from stanch.testing.decisions import approve, reject
from stanch.testing.runbooks import start_runbook
from stanch.testing.started import Started


def policy_for(directory: Path, world: World, **overrides: Any) -> Path:
    """`directory/stanch.yaml`: the harness's roster (carol and dave approve),
    alice paged for 15 minutes, pages to a file, and remediation scopes over every
    resource group of the world's subscriptions; `overrides` replace top-level keys."""
    subscriptions = world.subscriptions or sorted(
        {r.id.split("/")[2] for r in world.resources if r.id.lower().startswith("/subscriptions/")}
    )
    plan = response_plan(
        directory / "pages.jsonl",
        [{"people": ["alice"], "timeout": "15m"}],
        remediation={
            "scopes": [{"subscription": s, "resource_groups": ["*"]} for s in subscriptions]
        },
    )
    plan.update(overrides)
    path = directory / "stanch.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def registered_workflows(extra: Sequence[type] = (), packages: Sequence[str] = ()) -> list[type]:
    """What stanch's worker registers (incident, detector, every installed
    runbook, those of the policy's `runbook_packages`), and `extra` classes
    not installed yet (a runbook being scaffolded)."""
    from stanch.worker import workflows_for

    found = workflows_for(packages)
    return [*found, *(w for w in extra if w not in found)]


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, azure: AzureClients, extra: Sequence[type] = ()
) -> AsyncIterator[Worker]:
    """stanch's worker for the policy of `settings` (which must be valid and
    bind only runbooks that are loaded), plus `extra` workflows."""
    from stanch.worker import activities_for, worker_policy

    packages = worker_policy(settings).runbook_packages
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=registered_workflows(extra, packages),
        activities=activities_for(settings, azure, packages),
    ) as worker:
        yield worker


@dataclass
class RunbookWorker:
    """A running worker on a fresh task queue, and what a test does with it:
    start a runbook as an incident would, decide its gates as people would."""

    env: WorkflowEnvironment
    settings: Settings
    started: Started = field(default_factory=Started)

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def task_queue(self) -> str:
        return self.settings.task_queue

    async def start(self, name: str, resource_id: str, **options: Any) -> WorkflowHandle[Any, Any]:
        """Runbook `name` on `resource_id`, under a fresh incident id unless
        given; `options` as `start_runbook` takes them (plan, params, dry_run,
        requested_by, incident_id)."""
        return await start_runbook(
            self.started, self.client, self.task_queue, name, resource_id, **options
        )

    async def approve(
        self, handle: WorkflowHandle[Any, Any], step: str, by: str, comment: str | None = None
    ) -> RunbookView:
        """Once the run waits at gate `step`, `by` approves it (signed, as the
        on-call API forwards it for an approver's credential)."""
        await until_gate(handle, step)
        return await approve(handle, step, by, env=self.env, comment=comment)

    async def reject(
        self, handle: WorkflowHandle[Any, Any], step: str, by: str, comment: str | None = None
    ) -> RunbookView:
        await until_gate(handle, step)
        return await reject(handle, step, by, env=self.env, comment=comment)


async def until_gate(
    handle: WorkflowHandle[Any, Any], step: str | None = None, timeout: float = 30
) -> PendingApproval:
    """The pending approval once the run waits at `step` (any gate without
    one). Polls in real time: the time-skipping server skips no time while a
    test only queries, so the gate's deadline does not pass meanwhile."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view: RunbookView = await handle.query("status", result_type=RunbookView)
        if view.pending is not None and step in (None, view.pending.step):
            return view.pending
        if view.outcome is not None:
            raise AssertionError(f"{handle.id} ended {view.outcome} before reaching gate {step!r}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{handle.id} never reached gate {step or '(any)'!r}")
        await asyncio.sleep(0.025)


def fresh_task_queue() -> str:
    return f"stanch-test-{uuid.uuid4()}"
