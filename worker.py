"""Builds the stanch worker: every workflow and activity on one task queue.

Run more of these (same settings, same task queue) to scale out; Temporal
spreads the work. `python worker.py` uses STANCH_* settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from stanch.activities.audit import AuditActivities
from stanch.activities.azure_clients import AzureClients
from stanch.activities.compute import ComputeActivities
from stanch.activities.detectors import DetectorActivities
from stanch.activities.evidence import EvidenceActivities
from stanch.activities.health import HealthActivities
from stanch.activities.locks import LockActivities
from stanch.activities.monitor import MonitorActivities
from stanch.activities.network import NetworkActivities
from stanch.activities.notify import NotifyActivities
from stanch.activities.postmortem import PostmortemActivities
from stanch.activities.resources import ResourceActivities
from stanch.activities.response_plan import ResponsePlanActivities
from stanch.activities.scopes import ScopeActivities
from stanch.activities.toggles import ToggleActivities
from stanch.client.connection import connect
from stanch.client.schedules import sync_detectors
from stanch.gateway.signing import own_public_key
from stanch.models.settings import Settings, load_settings
from stanch.runbooks.registry import catalog, runbook_workflows
from stanch.stores.audit import SqliteAuditLog
from stanch.stores.evidence import EvidenceStore
from stanch.stores.policy import PolicySource, load_config
from stanch.stores.postmortem import PostmortemFolder
from stanch.stores.toggles import ToggleStore
from stanch.workflows.detector import DetectorWorkflow
from stanch.workflows.incident import IncidentWorkflow

WORKFLOWS: list[type] = [IncidentWorkflow, DetectorWorkflow, *runbook_workflows()]
Activity = Callable[..., Any]


def activities_for(settings: Settings, azure: AzureClients | None = None) -> list[Activity]:
    """Every activity, wired to its stores. Without `azure`, the Azure activities
    are left out (tests of paging and escalation need no cloud)."""
    log = SqliteAuditLog.from_settings(settings)
    policy = PolicySource(settings.config, log)
    plans = ResponsePlanActivities(policy, catalog(), own_public_key(settings))
    notify = NotifyActivities(policy, audit=log)
    audit = AuditActivities(log)
    postmortems = PostmortemActivities(PostmortemFolder(settings.postmortem_path))
    toggles = ToggleActivities(ToggleStore(settings.toggles_path))
    found: list[Activity] = [
        plans.load_response_plan,
        plans.load_decision_keys,
        notify.page_on_call,
        audit.record_audit,
        toggles.check_remediation,
        ScopeActivities(policy).load_remediation_scopes,
        postmortems.draft_postmortem,
    ]
    if azure is not None:
        found += azure_activities(azure, settings)
    return found


def azure_activities(azure: AzureClients, settings: Settings) -> list[Activity]:
    resources = ResourceActivities(azure)
    locks = LockActivities(azure)
    network = NetworkActivities(azure)
    compute = ComputeActivities(azure)
    health = HealthActivities(azure)
    monitor = MonitorActivities(azure)
    evidence = EvidenceActivities(resources, monitor, EvidenceStore(settings.evidence_path))
    detectors = DetectorActivities(monitor, settings)
    return [
        resources.get_resource,
        resources.merge_tags,
        resources.remove_tags,
        locks.place_lock,
        locks.remove_lock,
        network.quarantine_network,
        network.release_quarantine,
        network.verify_quarantine,
        compute.get_power_state,
        compute.restart_vm,
        compute.deallocate_vm,
        compute.start_vm,
        compute.read_scale_set,
        compute.scale_scale_set,
        health.get_availability,
        monitor.run_kql,
        monitor.read_metrics,
        evidence.capture_evidence,
        detectors.evaluate_detector,
        detectors.raise_detector_alert,
    ]


def build_worker(client: Client, settings: Settings, azure: AzureClients | None = None) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, azure),
    )


@contextlib.asynccontextmanager
async def worker_with_azure(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """A running worker with Azure clients of its own, closed once it has
    stopped: for in-process stacks (`stanch drill`) that never touch activities."""
    azure = AzureClients(settings)
    try:
        async with build_worker(client, settings, azure) as worker:
            yield worker
    finally:
        await azure.close()


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    config = load_config(settings.config)  # refuse to start on a broken policy file
    client = await connect(settings)
    if config.detectors:
        scheduled = await sync_detectors(client, config.detectors, settings.task_queue)
        logging.getLogger("stanch.worker").info("detector schedules: %s", ", ".join(scheduled))
    azure = AzureClients(settings)
    worker = build_worker(client, settings, azure)
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
