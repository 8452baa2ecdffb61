"""Every Azure activity with the real SDK clients against azuresim over TLS,
asserting on the simulator's call journal: which mutations happened, how often."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.mgmt.resource.resources.aio import ResourceManagementClient
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from stanch.activities.azure_errors import (
    AUTHORIZATION_FAILED,
    INVALID_REQUEST,
    RESOURCE_NOT_FOUND,
    SCOPE_LOCKED,
    THROTTLED,
)
from stanch.activities.compute import ComputeActivities
from stanch.activities.health import HealthActivities
from stanch.activities.locks import LockActivities
from stanch.activities.monitor import MonitorActivities
from stanch.activities.network import NetworkActivities, quarantine_nsg_name
from stanch.activities.resources import ResourceActivities
from stanch.models.azure import (
    KqlQuery,
    LockRemoval,
    LockRequest,
    MetricsQuery,
    QuarantineRequest,
    ResourceRef,
    ScaleRequest,
    TagChange,
    TagRemoval,
    VmRef,
)
from stanch.testing.estate import NIC1, RG, SUB, VM1, VM2, WORKSPACE

env = ActivityEnvironment


def mutations(sim: Any, since: int = 0) -> list[tuple[str, str]]:
    return [(c["method"], c["path"]) for c in sim.journal.calls(since) if c["mutation"]]


def last_seq(sim: Any) -> int:
    calls = sim.journal.calls()
    return calls[-1]["seq"] if calls else 0


def resource(sim: Any, resource_id: str) -> dict[str, Any]:
    return next(
        r for r in sim.state.snapshot()["resources"] if r["id"].lower() == resource_id.lower()
    )


async def test_get_resource_resolves_and_caches_the_api_version(sim, azure):
    resources = ResourceActivities(azure)
    first = await env().run(resources.get_resource, ResourceRef(resource_id=VM1))
    await env().run(resources.get_resource, ResourceRef(resource_id=VM2))
    assert first.name == "vm-web-1" and first.type == "Microsoft.Compute/virtualMachines"
    assert first.api_version == "2026-04-01" and first.request_id
    assert first.tags == {"service": "web", "env": "prod"}
    providers = [
        c for c in sim.journal.calls() if c["path"].endswith("/providers/Microsoft.Compute")
    ]
    assert len(providers) == 1, "api-version is resolved once per type"


async def test_missing_resource_is_typed_and_not_retried(sim, azure):
    resources = ResourceActivities(azure)
    with pytest.raises(ApplicationError) as missing:
        await env().run(resources.get_resource, ResourceRef(resource_id=VM1 + "-gone"))
    assert missing.value.type == RESOURCE_NOT_FOUND and missing.value.non_retryable


async def test_tags_merge_and_remove_are_idempotent(sim, azure):
    resources = ResourceActivities(azure)
    change = TagChange(resource_id=VM1, tags={"stanch.quarantine": "inc-1"})
    applied = await env().run(resources.merge_tags, change)
    again = await env().run(resources.merge_tags, change)
    assert applied.changed and not again.changed
    assert applied.tags == {"service": "web", "env": "prod", "stanch.quarantine": "inc-1"}
    assert [m[0] for m in mutations(sim)] == ["PATCH"], "the retry wrote nothing"

    removed = await env().run(
        resources.remove_tags, TagRemoval(resource_id=VM1, names=["stanch.quarantine"])
    )
    removed_again = await env().run(
        resources.remove_tags, TagRemoval(resource_id=VM1, names=["stanch.quarantine"])
    )
    assert removed.changed and not removed_again.changed
    assert resource(sim, VM1)["tags"] == {"service": "web", "env": "prod"}


async def test_lock_protects_evidence_from_deletion_through_the_sdk(sim, azure):
    locks = LockActivities(azure)
    request = LockRequest(scope=VM1, name="stanch-inc-1", notes="quarantined for incident inc-1")
    placed = await env().run(locks.place_lock, request)
    seq = last_seq(sim)
    await env().run(locks.place_lock, request)  # a retry
    assert mutations(sim, seq) == [], "the retry finds the lock in place and writes nothing"
    assert placed.level == "CanNotDelete" and placed.id.endswith("/locks/stanch-inc-1")
    assert len(sim.state.locks) == 1

    # Anyone trying to delete the quarantined VM, through the same SDK, is refused.
    async with ResourceManagementClient(
        azure.credential, SUB, base_url=sim.url, connection_verify=str(sim.ca_file), retry_total=0
    ) as arm:
        with pytest.raises(ResourceExistsError) as refused:
            poller = await arm.resources.begin_delete_by_id(VM1, api_version="2026-04-01")
            await poller.result()
    assert refused.value.error is not None and refused.value.error.code == "ScopeLocked"
    assert resource(sim, VM1)

    assert (await env().run(locks.remove_lock, LockRemoval(scope=VM1, name="stanch-inc-1"))).removed
    assert not (
        await env().run(locks.remove_lock, LockRemoval(scope=VM1, name="stanch-inc-1"))
    ).removed
    assert sim.state.locks == {}


async def test_read_only_lock_makes_mutations_scope_locked(sim, azure):
    await env().run(
        LockActivities(azure).place_lock, LockRequest(scope=RG, name="freeze", level="ReadOnly")
    )
    with pytest.raises(ApplicationError) as locked:
        await env().run(
            ResourceActivities(azure).merge_tags, TagChange(resource_id=VM2, tags={"a": "b"})
        )
    assert locked.value.type == SCOPE_LOCKED and locked.value.non_retryable


async def test_quarantine_swaps_the_nic_onto_a_deny_all_nsg_and_release_restores_it(sim, azure):
    network = NetworkActivities(azure)
    request = QuarantineRequest(resource_id=VM1, incident_id="inc-1")
    record = await env().run(network.quarantine_network, request)
    nsg_id = (
        f"{RG}/providers/Microsoft.Network/networkSecurityGroups/{quarantine_nsg_name('inc-1')}"
    )
    assert [n.nic_id.lower() for n in record.nics] == [NIC1.lower()]
    assert record.nics[0].original_nsg_id is None
    nsg = resource(sim, nsg_id)
    rules = {r["name"]: r["properties"] for r in nsg["properties"]["securityRules"]}
    assert set(rules) == {"stanch-quarantine-inc-1-inbound", "stanch-quarantine-inc-1-outbound"}
    assert {
        (p["direction"], p["access"], p["priority"], p["sourceAddressPrefix"])
        for p in rules.values()
    } == {("Inbound", "Deny", 100, "*"), ("Outbound", "Deny", 100, "*")}
    assert resource(sim, NIC1)["properties"]["networkSecurityGroup"]["id"].lower() == nsg_id.lower()
    first = mutations(sim)
    assert [m[0] for m in first] == ["PUT", "PUT"]  # the NSG, then the NIC

    seq = last_seq(sim)
    again = await env().run(network.quarantine_network, request)
    assert again.nics == record.nics
    assert mutations(sim, seq) == [], "a retry reads, finds everything in place, writes nothing"

    released = await env().run(network.release_quarantine, record)
    assert released.removed
    assert (
        "networkSecurityGroup" not in resource(sim, NIC1)["properties"]
        or not resource(sim, NIC1)["properties"]["networkSecurityGroup"]
    )
    assert not any(r["id"].lower() == nsg_id.lower() for r in sim.state.snapshot()["resources"])
    assert not (await env().run(network.release_quarantine, record)).removed


async def test_quarantine_keeps_and_restores_a_shared_nsg(sim, azure):
    """A NIC behind a shared NSG: the shared NSG is never modified."""
    shared = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-web-shared"
    with sim.state.lock:
        sim.state.put(shared, "westeurope", {}, {"securityRules": []})
        sim.state.get(NIC1).properties["networkSecurityGroup"] = {"id": shared}
    network = NetworkActivities(azure)
    record = await env().run(
        network.quarantine_network, QuarantineRequest(resource_id=NIC1, incident_id="inc-2")
    )
    assert record.nics[0].original_nsg_id == shared
    assert resource(sim, shared)["properties"]["securityRules"] == []
    await env().run(network.release_quarantine, record)
    assert resource(sim, NIC1)["properties"]["networkSecurityGroup"]["id"] == shared


async def test_quarantine_refuses_what_it_cannot_isolate(sim, azure):
    storage = f"{RG}/providers/Microsoft.Storage/storageAccounts/stwebprod"
    with pytest.raises(ApplicationError) as refused:
        await env().run(
            NetworkActivities(azure).quarantine_network,
            QuarantineRequest(resource_id=storage, incident_id="inc-3"),
        )
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert mutations(sim) == []


async def test_power_state_restart_and_deallocate(sim, azure):
    compute = ComputeActivities(azure)
    vm = VmRef(resource_id=VM1)
    assert (await env().run(compute.get_power_state, vm)).power_state == "running"
    beats: list[Any] = []
    activity_env = env()
    activity_env.on_heartbeat = lambda *d: beats.append(d[0])
    restarted = await activity_env.run(compute.restart_vm, vm)
    assert restarted.power_state == "running" and beats, "heartbeats while Azure works"
    deallocated = await env().run(compute.deallocate_vm, vm)
    assert deallocated.power_state == "deallocated"
    started = await env().run(compute.start_vm, vm)
    assert started.power_state == "running"
    posts = [p.rsplit("/", 1)[-1] for m, p in mutations(sim) if m == "POST"]
    assert posts == ["restart", "deallocate", "start"]


async def test_retried_restart_resumes_instead_of_restarting_twice(sim, azure):
    import dataclasses

    compute = ComputeActivities(azure)
    vm = VmRef(resource_id=VM1)
    first = env()
    tokens: list[Any] = []
    first.on_heartbeat = lambda *d: tokens.append(d[0])
    await first.run(compute.restart_vm, vm)
    # The retry of an attempt that died after Azure accepted the restart:
    retry = env()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=[tokens[0]])
    assert (await retry.run(compute.restart_vm, vm)).power_state == "running"
    assert [p.rsplit("/", 1)[-1] for m, p in mutations(sim) if m == "POST"] == ["restart"]


async def test_a_retry_waits_for_a_restart_azure_accepted_but_nobody_recorded(sim, azure):
    """The first attempt's worker died between Azure accepting the restart and
    heartbeating its token: the retry finds the VM mid-operation and waits for
    it instead of restarting it a second time."""
    import dataclasses

    from stanch.testing.estate import RG

    compute = ComputeActivities(azure)
    vm = VmRef(resource_id=VM1)
    await azure.compute(SUB).virtual_machines.begin_restart(RG.rsplit("/", 1)[-1], "vm-web-1")
    retry = env()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=[])
    settled = await retry.run(compute.restart_vm, vm)
    assert settled.power_state == "running" and not settled.operation_under_way
    assert [p.rsplit("/", 1)[-1] for m, p in mutations(sim) if m == "POST"] == ["restart"]
    # A later, separate restart (attempt 1) is sent as usual.
    await env().run(compute.restart_vm, vm)
    assert [p.rsplit("/", 1)[-1] for m, p in mutations(sim) if m == "POST"] == ["restart"] * 2


async def test_a_retried_scale_out_keeps_the_capacity_to_return_to(sim, azure):
    """The worker died after Azure applied the new capacity: the retry writes
    nothing and still reports the capacity the runbook read before, so the
    release scales back in."""
    from stanch.testing.estate import VMSS

    compute = ComputeActivities(azure)
    before = (await env().run(compute.read_scale_set, ResourceRef(resource_id=VMSS))).capacity
    scale = ScaleRequest(resource_id=VMSS, capacity=before + 2, previous=before)
    first = await env().run(compute.scale_scale_set, scale)
    since = last_seq(sim)
    retried = await env().run(compute.scale_scale_set, scale)
    assert (first.previous, retried.previous) == (before, before)
    assert retried.capacity == before + 2 and mutations(sim, since) == []


async def test_resource_health(sim, azure):
    health = HealthActivities(azure)
    down = await env().run(health.get_availability, ResourceRef(resource_id=VM1))
    up = await env().run(health.get_availability, ResourceRef(resource_id=VM2))
    assert down.state == "Unavailable" and "heartbeat" in (down.summary or "")
    assert up.state == "Available"


async def test_kql_on_a_workspace_and_on_a_resource(sim, azure):
    monitor = MonitorActivities(azure)
    errors = await env().run(
        monitor.run_kql,
        KqlQuery(workspace_id=WORKSPACE, query="Event | where Computer == 'vm-web-1' | take 10"),
    )
    records = errors.tables[0].records()
    assert [r["RenderedDescription"] for r in records] == [
        "The kernel watchdog timed out",
        "Service nginx terminated unexpectedly",
    ]
    beats = await env().run(monitor.run_kql, KqlQuery(resource_id=VM2, query="Heartbeat | count"))
    assert beats.tables[0].rows == [[1]]
    with pytest.raises(ApplicationError) as bad:
        await env().run(monitor.run_kql, KqlQuery(workspace_id=WORKSPACE, query="NoSuchTable"))
    assert bad.value.type == INVALID_REQUEST and bad.value.non_retryable


async def test_metrics(sim, azure):
    result = await env().run(
        MonitorActivities(azure).read_metrics,
        MetricsQuery(
            resource_ids=[VM1, VM2],
            namespace="Microsoft.Compute/virtualMachines",
            names=["Percentage CPU"],
            timespan=timedelta(minutes=10),
        ),
    )
    by_vm = {s.resource_id: s for s in result.series}
    assert by_vm[VM1].latest() == 100 and by_vm[VM2].latest() == 23
    assert [p.value for p in by_vm[VM1].points] == [35, 62, 97, 99, 100]


async def test_forbidden_fails_once_non_retryable_and_typed(sim, azure):
    sim.faults.add(
        _fault(
            path="virtualMachines/vm-web-1$",
            method="GET",
            status=403,
            code="AuthorizationFailed",
            times=None,
        )
    )
    with pytest.raises(ApplicationError) as denied:
        await env().run(ResourceActivities(azure).get_resource, ResourceRef(resource_id=VM1))
    assert denied.value.type == AUTHORIZATION_FAILED and denied.value.non_retryable
    assert len([c for c in sim.journal.calls() if c["status"] == 403]) == 1


async def test_throttling_carries_retry_after_as_the_next_delay(sim, azure):
    sim.faults.add(_fault(path="/tags/default", status=429, retry_after=7))
    with pytest.raises(ApplicationError) as throttled:
        await env().run(
            ResourceActivities(azure).merge_tags, TagChange(resource_id=VM1, tags={"a": "b"})
        )
    assert throttled.value.type == THROTTLED and not throttled.value.non_retryable
    assert throttled.value.next_retry_delay == timedelta(seconds=7)


def _fault(**kw: Any) -> Any:
    from stanch.azuresim.faults import Fault

    return Fault(**kw)
