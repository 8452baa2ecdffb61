"""block_ip on the time-skipping server, its activities against azuresim: the
address comes from the alert's dimensions, is checked before anyone is asked,
is blocked in the VM's NSG only once approved, and release removes exactly
that rule."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from stanch.models.network_rules import block_rule_name
from stanch.models.runbook import RunbookOutcome
from stanch.models.settings import Settings
from stanch.stores.page_file import read_pages
from stanch.testing.estate import RG, SUB, VM2
from stanch.testing.runbooks import audit_records, result_of
from stanch.testing.started import Started
from stanch.testing.worker import RunbookWorker, until_gate
from tests.support.nsg import NSG_WEB, attach_to_nic, rules_of, team_nsg, team_rules_intact

NIC2 = f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-web-2-nic"
WORKSPACE = (
    f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/"
    "Microsoft.OperationalInsights/workspaces/law-ops"
)
ATTACKER = {"ClientIP": "203.0.113.7", "_ResourceId": VM2.lower()}


@pytest.fixture
def worker(ts_env: WorkflowEnvironment, runbooks: Settings, started: Started) -> RunbookWorker:
    """The `runbooks` worker, driven as stanch.testing drives one: runbooks
    started as an incident would, gates decided as people would."""
    return RunbookWorker(ts_env, runbooks, started)


async def block_ip(
    worker: RunbookWorker, dimensions: dict[str, str], resource_id: str = VM2, **options: Any
) -> WorkflowHandle[Any, Any]:
    """As an incident starts it: the alert's dimensions in the runbook's input."""
    return await worker.start("block_ip", resource_id, dimensions=dimensions, **options)


def rule_writes(sim: Any) -> list[tuple[str, str]]:
    return [
        (c["method"], c["path"].rsplit("/", 1)[-1])
        for c in sim.journal.calls()
        if c["mutation"] and "/securityRules/" in c["path"]
    ]


async def test_approved_block_adds_the_rule_and_release_removes_exactly_it(worker, runbooks, sim):
    attach_to_nic(sim, NIC2, team_nsg(sim))
    params = {"port": 22, "diagnostics": ["linux-connections"]}
    handle = await block_ip(worker, ATTACKER, params=params)
    pending = await until_gate(handle)
    assert (pending.step, pending.risk) == ("block", "medium")
    assert rule_writes(sim) == [], "nothing blocked before the approval"
    await worker.approve(handle, "block", "carol")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.CONTAINED, result.summary

    incident = handle.id.split("-")[1]
    name = block_rule_name(incident, "203.0.113.7/32", 22, "*", "Inbound")
    held = rules_of(sim)[name]
    assert held["access"] == "Deny" and held["sourceAddressPrefix"] == "203.0.113.7/32"
    assert held["destinationPortRange"] == "22" and held["priority"] == 102
    assert rule_writes(sim) == [("PUT", name)]
    assert [s.name for s in result.steps] == [
        "find network security groups",
        "capture evidence (nsg-web)",
        "run diagnostic linux-connections",
        "approval: block",
        "block 203.0.113.7/32 (port 22) in nsg-web",
    ]
    # Evidence before the change: the NSG as it was, and what was connected.
    nsg_evidence, connections = result.evidence
    audit = audit_records(runbooks.state_dir)
    for step, evidence in (
        ("capture evidence (nsg-web)", nsg_evidence),
        ("run diagnostic linux-connections", connections),
    ):
        record = next(r for r in audit if r["action"] == step)
        assert record["details"]["sha256"] == evidence.sha256
    assert [u.activity for u in result.applied] == ["unblock_traffic"]

    applied = [u.model_dump(mode="json") for u in result.applied]
    release = await worker.start(
        "release",
        VM2,
        requested_by="carol",
        incident_id=incident,
        params={"runbook": "block_ip", "applied": applied},
    )
    await worker.approve(release, "release", "dave")
    released = await result_of(release)
    assert released.outcome is RunbookOutcome.RELEASED, released.summary
    assert name not in rules_of(sim) and team_rules_intact(sim) and len(rules_of(sim)) == 3
    assert rule_writes(sim) == [("PUT", name), ("DELETE", name)]


async def test_rejected_block_changes_nothing(worker, sim):
    attach_to_nic(sim, NIC2, team_nsg(sim))
    handle = await block_ip(worker, ATTACKER)
    await worker.reject(handle, "block", "carol")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.DENIED
    assert rule_writes(sim) == [] and len(rules_of(sim)) == 3


async def test_an_alert_without_the_address_or_with_a_forbidden_one_fails_before_anyone_is_asked(
    worker, runbooks, sim
):
    attach_to_nic(sim, NIC2, team_nsg(sim))
    cases = {
        "none of the dimensions": {"Computer": "vm-web-2"},
        "Azure's platform address": {"ClientIP": "168.63.129.16"},
        "whole internet": {"IPAddress": "0.0.0.0/0"},
        "not an IP address or CIDR": {"SourceIP": "203.0.113.7' or 1=1"},
    }
    for why, dimensions in cases.items():
        handle = await block_ip(worker, dimensions)
        result = await result_of(handle)
        assert result.outcome is RunbookOutcome.FAILED and why in result.summary, result.summary
        assert result.steps == [], "no step, no gate: nobody was asked"
    assert sim.journal.calls() == [], "Azure was never called"
    pages = runbooks.state_dir / "pages.jsonl"
    assert not pages.exists() or not list(read_pages(pages))


async def test_a_named_nsg_for_a_workspace_alert_and_a_dry_run(worker, sim):
    team_nsg(sim)
    caller = {"CallerIpAddress": "198.51.100.23"}
    params = {"nsg_id": NSG_WEB, "address_dimensions": ["CallerIpAddress"], "port": 443}
    dry = await block_ip(worker, caller, WORKSPACE, params=params, dry_run=True)
    planned = await result_of(dry)
    assert planned.outcome is RunbookOutcome.PLANNED and rule_writes(sim) == []

    handle = await block_ip(worker, caller, WORKSPACE, params=params)
    await worker.approve(handle, "block", "alice")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.CONTAINED, result.summary
    (put,) = rule_writes(sim)
    assert rules_of(sim)[put[1]]["sourceAddressPrefix"] == "198.51.100.23/32"


async def test_an_nsg_outside_the_remediation_scopes_is_refused(worker, sim):
    outside = f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/Microsoft.Network/networkSecurityGroups/nsg-ops"
    team_nsg(sim, nsg_id=outside)
    handle = await block_ip(worker, ATTACKER, params={"nsg_id": outside})
    await worker.approve(handle, "block", "carol")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.REFUSED, result.summary
    assert "outside remediation.scopes" in result.summary
    assert rule_writes(sim) == [] and len(rules_of(sim, outside)) == 3
