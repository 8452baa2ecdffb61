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

from activities.azure_clients import AzureClients
from activities.compute import ComputeActivities
from activities.health import HealthActivities
from activities.locks import LockActivities
from activities.monitor import MonitorActivities
from activities.network import NetworkActivities
from activities.notify import NotifyActivities
from activities.policy import PolicySource
from activities.resources import ResourceActivities
from activities.response_plan import ResponsePlanActivities
from models.config import load_config
from models.settings import Settings, load_settings
from workflows.client import connect
from workflows.incident import IncidentWorkflow

WORKFLOWS = [IncidentWorkflow]
Activity = Callable[..., Any]


def activities_for(config_path: Path, azure: AzureClients | None = None) -> list[Activity]:
    policy = PolicySource(config_path)
    plans = ResponsePlanActivities(policy)
    notify = NotifyActivities(policy)
    found: list[Activity] = [plans.load_response_plan, notify.page_on_call]
    if azure is not None:
        found += azure_activities(azure)
    return found


def azure_activities(azure: AzureClients) -> list[Activity]:
    resources = ResourceActivities(azure)
    locks = LockActivities(azure)
    network = NetworkActivities(azure)
    compute = ComputeActivities(azure)
    health = HealthActivities(azure)
    monitor = MonitorActivities(azure)
    return [
        resources.get_resource,
        resources.merge_tags,
        resources.remove_tags,
        locks.place_lock,
        locks.remove_lock,
        network.quarantine_network,
        network.release_quarantine,
        compute.get_power_state,
        compute.restart_vm,
        compute.deallocate_vm,
        compute.start_vm,
        health.get_availability,
        monitor.run_kql,
        monitor.read_metrics,
    ]


def build_worker(
    client: Client, task_queue: str, config_path: Path, azure: AzureClients | None = None
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(config_path, azure),
    )


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    load_config(settings.config)  # refuse to start on a broken policy file
    client = await connect(settings)
    azure = AzureClients(settings)
    worker = build_worker(client, settings.task_queue, settings.config, azure)
    try:
        if stop is None:
            await worker.run()
            return
        async with worker:
            await stop.wait()
    finally:
        await azure.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_worker(load_settings()))
