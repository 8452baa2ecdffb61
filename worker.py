"""Builds the stanch worker: every workflow and activity on one task queue.

Which runbooks and extra activities it has comes from the policy it loads:
stanch's own, installed packages' entry points (`stanch.runbooks`,
`stanch.activities`) and the policy's `runbook_packages:`. A policy binding a
runbook that is not loaded is refused before the worker starts.

Run more of these (same settings, same task queue) to scale out; Temporal
spreads the work. `python worker.py` uses STANCH_* settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from stanch.activities.access import AccessActivities, AccessPlanActivities
from stanch.activities.audit import AuditActivities
from stanch.activities.azure_clients import AzureClients
from stanch.activities.communications import CommunicationsActivities
from stanch.activities.compute import ComputeActivities
from stanch.activities.detectors import DetectorActivities
from stanch.activities.evidence import EvidenceActivities
from stanch.activities.extensions import (
    Activity,
    ActivityContext,
    extension_activities,
    registrable,
)
from stanch.activities.forensics import ForensicsActivities
from stanch.activities.health import HealthActivities
from stanch.activities.locks import LockActivities
from stanch.activities.monitor import MonitorActivities
from stanch.activities.network import NetworkActivities
from stanch.activities.network_rules import NetworkRuleActivities
from stanch.activities.notify import NotifyActivities
from stanch.activities.postmortem import PostmortemActivities
from stanch.activities.priority import raise_incident_priority
from stanch.activities.resources import ResourceActivities
from stanch.activities.response_plan import ResponsePlanActivities
from stanch.activities.run_command import RunCommandActivities
from stanch.activities.scopes import ScopeActivities
from stanch.activities.toggles import ToggleActivities
from stanch.activities.traffic import TrafficActivities
from stanch.client.connection import connect
from stanch.client.runbooks import require_loaded_runbooks
from stanch.client.schedules import sync_detectors
from stanch.gateway.signing import own_public_key
from stanch.models.config import StanchConfig
from stanch.models.settings import Settings, load_settings
from stanch.runbooks.registry import catalog, runbook_workflows
from stanch.stores.evidence import evidence_store
from stanch.stores.policy import PolicySource, load_config
from stanch.stores.select import audit_log, page_files, postmortems, subscriptions, toggle_store
from stanch.workflows.access_grant import AccessGrantWorkflow
from stanch.workflows.communications import CommunicationsWorkflow
from stanch.workflows.detector import DetectorWorkflow
from stanch.workflows.incident import IncidentWorkflow


def workflows_for(packages: Sequence[str] = ()) -> list[type]:
    """The incident, the detector and every runbook: stanch's, installed
    packages' and those of the modules in `packages` (runbook_packages)."""
    return [
        IncidentWorkflow,
        CommunicationsWorkflow,
        DetectorWorkflow,
        AccessGrantWorkflow,
        *runbook_workflows(packages),
    ]


def __getattr__(name: str) -> list[type]:
    # `WORKFLOWS`, for tests and tools that load no policy: computed on use,
    # not at import, so importing this module never imports a team's package.
    if name == "WORKFLOWS":
        return workflows_for()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def worker_policy(settings: Settings) -> StanchConfig:
    """The policy a worker starts with; ConfigError when it is invalid, binds a
    runbook that is not loaded, or names a runbook package that will not load."""
    return require_loaded_runbooks(load_config(settings.config), str(settings.config))


def activities_for(
    settings: Settings, azure: AzureClients | None = None, packages: Sequence[str] = ()
) -> list[Activity]:
    """Every activity, wired to its stores. Without `azure`, the Azure activities
    (stanch's and the extensions') are left out (tests of paging and escalation
    need no cloud). `packages`: the policy's runbook_packages."""
    log = audit_log(settings)  # files, or the fleet's database (stores/select.py)
    loaded = catalog(packages)
    # A policy edit binding a runbook this worker did not load is refused like
    # any invalid edit: the last valid policy stays in force.
    policy = PolicySource(settings.config, log, runbooks=frozenset(loaded))
    plans = ResponsePlanActivities(policy, loaded, own_public_key(settings))
    notify = NotifyActivities(policy, audit=log, page_files=page_files(settings))
    audit = AuditActivities(log)
    drafts = PostmortemActivities(postmortems(settings))
    book = subscriptions(settings)
    comms = CommunicationsActivities(policy, book, book, trusted_keys=own_public_key(settings))
    toggles = ToggleActivities(toggle_store(settings))
    found: list[Activity] = [
        plans.load_response_plan,
        plans.load_decision_keys,
        notify.page_on_call,
        audit.record_audit,
        toggles.check_remediation,
        ScopeActivities(policy).load_remediation_scopes,
        AccessPlanActivities(policy, own_public_key(settings)).load_access_plan,
        drafts.draft_postmortem,
        comms.load_comms_plan,
        comms.brief_communications,
        comms.find_audience,
        comms.deliver_update,
        raise_incident_priority,
    ]
    if azure is None:
        return registrable(found, [])
    found += azure_activities(azure, settings)
    context = ActivityContext(azure, settings, evidence_store(settings))
    return registrable(found, extension_activities(context, packages))


def azure_activities(azure: AzureClients, settings: Settings) -> list[Activity]:
    resources = ResourceActivities(azure)
    locks = LockActivities(azure)
    network = NetworkActivities(azure)
    compute = ComputeActivities(azure)
    health = HealthActivities(azure)
    monitor = MonitorActivities(azure)
    evidence = EvidenceActivities(resources, monitor, evidence_store(settings))
    detectors = DetectorActivities(monitor, settings)
    network_rules = NetworkRuleActivities(azure)
    run_command = RunCommandActivities(azure, evidence_store(settings))
    forensics = ForensicsActivities(azure, evidence_store(settings))
    traffic = TrafficActivities(azure)
    access = AccessActivities(azure)
    return [
        access.grant_access,
        access.revoke_access,
        access.list_grants,
        resources.get_resource,
        resources.merge_tags,
        resources.remove_tags,
        locks.place_lock,
        locks.remove_lock,
        network.quarantine_network,
        network.release_quarantine,
        network.verify_quarantine,
        network_rules.find_rule_targets,
        network_rules.block_traffic,
        network_rules.unblock_traffic,
        run_command.run_diagnostic,
        forensics.snapshot_disks,
        forensics.fetch_boot_diagnostics,
        forensics.start_packet_capture,
        compute.get_power_state,
        compute.restart_vm,
        compute.deallocate_vm,
        compute.start_vm,
        compute.read_scale_set,
        compute.scale_scale_set,
        health.get_availability,
        traffic.read_traffic_profile,
        traffic.set_endpoints,
        traffic.check_endpoint_serving,
        monitor.run_kql,
        monitor.read_metrics,
        evidence.capture_evidence,
        detectors.evaluate_detector,
        detectors.raise_detector_alert,
    ]


# stanch's own modules, its workflow modules included, are imported once and
# shared by every run instead of re-imported into each run's sandbox: a cached
# workflow costs the worker a fraction of the memory, and a run started or
# replayed after eviction no longer executes its module first (issue 15, item
# 3). They keep no module state. The restrictions on what workflow code may
# call are still checked by the tests, whose workers use the default sandbox.
# cryptography goes with them: its Rust core imports cryptography.exceptions
# lazily when a signature fails, and inside a sandbox that holds stanch but
# re-imports cryptography that import aborted the whole worker process (a
# forged decision was enough: tests/workflows/test_signed_decisions.py).
SHARED_MODULES = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("stanch", "cryptography")
)


def build_worker(
    client: Client,
    settings: Settings,
    azure: AzureClients | None = None,
    config: StanchConfig | None = None,
) -> Worker:
    """A worker for `config` (default: the policy file of `settings`, which
    must be valid and bind only loaded runbooks)."""
    packages = (config or worker_policy(settings)).runbook_packages
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=workflows_for(packages),
        activities=activities_for(settings, azure, packages),
        workflow_runner=SHARED_MODULES,
        max_cached_workflows=settings.worker_cached_workflows,
        max_concurrent_workflow_tasks=settings.worker_workflow_task_slots,
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
    config = worker_policy(settings)  # refuse to start on a broken policy or an unloaded runbook
    client = await connect(settings)
    if config.detectors:
        scheduled = await sync_detectors(client, config.detectors, settings.task_queue)
        logging.getLogger("stanch.worker").info("detector schedules: %s", ", ".join(scheduled))
    azure = AzureClients(settings)
    worker = build_worker(client, settings, azure, config)
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
