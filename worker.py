"""Builds the stanch worker: every workflow and activity on one task queue.

Run more of these (same settings, same task queue) to scale out; Temporal
spreads the work. `python worker.py` uses STANCH_* settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from activities.policy import PolicySource
from activities.response_plan import ResponsePlanActivities
from models.config import load_config
from models.settings import Settings, load_settings
from workflows.client import connect
from workflows.incident import IncidentWorkflow

WORKFLOWS = [IncidentWorkflow]


def activities_for(config_path: Path) -> list[Callable[..., Any]]:
    policy = PolicySource(config_path)
    plans = ResponsePlanActivities(policy)
    notify = NotifyActivities(policy)
    return [plans.load_response_plan, notify.page_on_call]


def build_worker(client: Client, task_queue: str, config_path: Path) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(config_path),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    load_config(settings.config)  # refuse to start on a broken policy file
    client = await connect(settings)
    worker = build_worker(client, settings.task_queue, settings.config)
    if stop is None:
        await worker.run()
        return
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_worker(load_settings()))
