"""Runbooks on the time-skipping server (approval timeouts in milliseconds) with
their activities against azuresim over TLS."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from stanch.azuresim.faults import Fault
from stanch.models.risk import Risk
from stanch.models.runbook import (
    ApprovalDecision,
    RunbookOutcome,
    RunbookView,
    StepStatus,
)
from stanch.stores.page_file import read_pages
from stanch.stores.toggles import ToggleStore
from stanch.testing.decisions import decide, signed
from stanch.testing.estate import NIC1, VM1, VM2
from stanch.testing.runbooks import (
    approval_plan,
    audit_records,
    journal_mutations,
    result_of,
    start_runbook,
)

QUARANTINE_MUTATIONS = [
    # Forensics first, once isolation is approved (runbooks/quarantine_vm.py).
    ("PUT", "snapshots/stanch-{incident}-vm-web-1-osdisk"),
    ("PUT", "snapshots/stanch-{incident}-vm-web-1-data0"),
    ("PATCH", "tags/default"),
    ("PUT", "locks/stanch-{incident}"),
    ("PUT", "networkSecurityGroups/stanch-quarantine-{incident}"),
    ("PUT", "networkInterfaces/vm-web-1-nic"),
]


async def status(handle: WorkflowHandle[Any, Any]) -> RunbookView:
    return await handle.query("status", result_type=RunbookView)


async def until_pending(handle: WorkflowHandle[Any, Any]) -> RunbookView:
    for _ in range(400):
        view = await status(handle)
        if view.pending is not None:
            return view
        await asyncio.sleep(0.025)
    raise AssertionError("the runbook never reached its approval gate")


def decision(step: str, by: str) -> ApprovalDecision:
    return ApprovalDecision(step=step, by=by)


def expected(incident: str) -> list[tuple[str, str]]:
    return [(m, p.format(incident=incident)) for m, p in QUARANTINE_MUTATIONS]


async def test_unanswered_approval_escalates_through_tiers_then_denies(
    ts_env, runbooks, sim, started
):
    handle = await start_runbook(started, ts_env.client, runbooks.task_queue, "quarantine_vm", VM1)
    result = await result_of(handle)  # awaiting the result lets the server skip 30 minutes
    assert result.outcome is RunbookOutcome.DENIED
    assert "denied by default" in result.summary
    gate = next(s for s in result.steps if s.name == "approval: isolate")
    assert gate.status is StepStatus.DENIED and gate.ended_at and gate.started_at
    assert (gate.ended_at - gate.started_at).total_seconds() == pytest.approx(1800, abs=5)
    approval_pages = [
        p for p in read_pages(runbooks.state_dir / "pages.jsonl") if "approval" in p["reason"]
    ]
    assert [p["recipients"] for p in approval_pages] == [["alice", "carol", "dave"], ["dave"]]
    assert journal_mutations(sim) == []


async def test_validator_refuses_strangers_and_self_approval_leaving_no_history(
    ts_env, runbooks, sim, started
):
    handle = await start_runbook(
        started, ts_env.client, runbooks.task_queue, "quarantine_vm", VM1, requested_by="carol"
    )
    await until_pending(handle)
    before = len([e async for e in handle.fetch_history_events()])
    refusals = {}
    for who in ("mallory", "bob", "carol"):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(
                handle, "approve", decision("isolate", who), env=ts_env, result_type=RunbookView
            )
        refusals[who] = str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as unknown:
        await decide(
            handle,
            "approve",
            decision("delete everything", "dave"),
            env=ts_env,
            result_type=RunbookView,
        )
    added = [EventType.Name(e.event_type) async for e in handle.fetch_history_events()][before:]
    assert not [k for k in added if "UPDATE" in k or "SIGNAL" in k], added
    assert "not on the roster" in refusals["mallory"]
    assert "may not approve high-risk" in refusals["bob"]
    assert "four eyes" in refusals["carol"]
    assert "not an approval gate" in str(unknown.value.cause)
    assert (await status(handle)).pending is not None
    await decide(
        handle, "approve", decision("isolate", "dave"), env=ts_env, result_type=RunbookView
    )
    assert (await result_of(handle)).outcome is RunbookOutcome.CONTAINED


async def test_two_of_three_quorum(ts_env, runbooks, sim, started):
    handle = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "quarantine_vm",
        VM1,
        plan=approval_plan(required_high=2),
        incident_id="quorum1",
    )
    view = await until_pending(handle)
    assert view.pending is not None and view.pending.required == 2
    assert view.pending.eligible == ["alice", "carol", "dave"]
    after_one = await decide(
        handle, "approve", decision("isolate", "carol"), env=ts_env, result_type=RunbookView
    )
    assert after_one.pending is not None and after_one.pending.approvals == ["carol"]
    with pytest.raises(WorkflowUpdateFailedError) as twice:
        await decide(
            handle, "approve", decision("isolate", "carol"), env=ts_env, result_type=RunbookView
        )
    assert "has already approved" in str(twice.value.cause)
    assert journal_mutations(sim) == [], "one approval of two changes nothing"
    await decide(
        handle, "approve", decision("isolate", "alice"), env=ts_env, result_type=RunbookView
    )
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.CONTAINED
    gate = next(s for s in result.steps if s.name == "approval: isolate")
    assert gate.detail == "approved by carol, alice"


async def test_approval_sent_before_the_gate_waits_is_not_lost(ts_env, runbooks, sim, started):
    handle = await start_runbook(
        started, ts_env.client, runbooks.task_queue, "quarantine_vm", VM1, incident_id="early1"
    )
    # By signal, as a client that cannot wait for an answer would: it is buffered
    # and checked by the same rule, then held until the gate asks.
    await handle.signal(
        "approve", await signed(handle.id, "approve", decision("isolate", "dave"), env=ts_env)
    )
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.CONTAINED
    assert journal_mutations(sim) == expected("early1")


async def test_quarantine_leaves_exactly_tag_lock_and_isolation_and_the_evidence_hash(
    ts_env, runbooks, sim, started
):
    handle = await start_runbook(
        started, ts_env.client, runbooks.task_queue, "quarantine_vm", VM1, incident_id="q1"
    )
    await until_pending(handle)
    await decide(
        handle, "approve", decision("isolate", "carol"), env=ts_env, result_type=RunbookView
    )
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.CONTAINED
    assert journal_mutations(sim) == expected("q1")
    assert not any(c["method"] == "DELETE" for c in sim.journal.calls()), "never deletes"
    estate = sim.state.snapshot()
    vm = next(r for r in estate["resources"] if r["id"] == VM1)
    assert vm["tags"]["stanch.quarantine"] == "q1" and vm["powerState"] == "running"
    assert [lock["name"] for lock in estate["locks"]] == ["stanch-q1"]
    nic = next(r for r in estate["resources"] if r["id"].lower() == NIC1.lower())
    assert nic["properties"]["networkSecurityGroup"]["id"].endswith("stanch-quarantine-q1")
    assert [s.name for s in result.steps][-1] == "verify isolation"

    evidence = next(e for e in result.evidence if e.name == "vm-web-1.json")
    stored = Path(urlparse(evidence.location).path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == evidence.sha256
    assert b"vm-web-1" in stored
    audit = audit_records(runbooks.state_dir)
    captured = next(r for r in audit if r["action"] == "capture evidence")
    assert captured["details"]["sha256"] == evidence.sha256
    assert [
        r["action"] for r in audit if r["details"].get("mutates") and r["outcome"] == "succeeded"
    ] == [
        "capture forensics: disk snapshots",
        "capture forensics: boot diagnostics",
        "tag as quarantined",
        "lock against deletion",
        "isolate network",
    ]
    assert all(
        r["request_id"] for r in audit if r["action"] in ("tag as quarantined", "isolate network")
    )
    assert [u.step for u in result.applied] == [
        "tag as quarantined",
        "lock against deletion",
        "isolate network",
    ]


async def test_dry_run_mutates_nothing_and_records_the_plan(ts_env, runbooks, sim, started):
    handle = await start_runbook(
        started, ts_env.client, runbooks.task_queue, "quarantine_vm", VM1, dry_run=True
    )
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.PLANNED
    assert journal_mutations(sim) == []
    planned = [s.name for s in result.steps if s.status is StepStatus.PLANNED]
    assert planned == [
        "approval: isolate",
        "capture forensics: disk snapshots",
        "capture forensics: boot diagnostics",
        "tag as quarantined",
        "lock against deletion",
        "isolate network",
    ]
    assert result.applied == []


async def test_kill_switch_stops_before_the_first_mutation(ts_env, runbooks, sim, started):
    ToggleStore(runbooks.toggles_path).set(False, None, by="dave", reason="drill in progress")
    handle = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "quarantine_vm",
        VM1,
        plan=approval_plan(auto_approve=[Risk.HIGH]),
    )
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.HALTED
    assert "switched off by dave: drill in progress" in result.summary
    assert journal_mutations(sim) == []


async def test_kill_switch_per_runbook(ts_env, runbooks, sim, started):
    ToggleStore(runbooks.toggles_path).set(False, "quarantine_vm", by="dave", reason=None)
    handle = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "quarantine_vm",
        VM1,
        plan=approval_plan(auto_approve=[Risk.HIGH]),
    )
    assert (await result_of(handle)).outcome is RunbookOutcome.HALTED
    ToggleStore(runbooks.toggles_path).set(True, "quarantine_vm", by="dave", reason=None)
    again = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "quarantine_vm",
        VM1,
        plan=approval_plan(auto_approve=[Risk.HIGH]),
    )
    assert (await result_of(again)).outcome is RunbookOutcome.CONTAINED


async def test_release_undoes_exactly_what_was_applied(ts_env, runbooks, sim, started):
    before = sim.state.snapshot()
    quarantined = await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "quarantine_vm",
            VM1,
            plan=approval_plan(auto_approve=[Risk.HIGH]),
            incident_id="rel1",
        )
    )
    assert quarantined.outcome is RunbookOutcome.CONTAINED
    seq = sim.journal.calls()[-1]["seq"]
    release = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "release",
        VM1,
        requested_by="carol",
        incident_id="rel1",
        params={
            "runbook": "quarantine_vm",
            "applied": [u.model_dump() for u in quarantined.applied],
        },
    )
    await until_pending(release)
    with pytest.raises(WorkflowUpdateFailedError):  # four eyes: carol asked for it
        await decide(
            release, "approve", decision("release", "carol"), env=ts_env, result_type=RunbookView
        )
    await decide(
        release, "approve", decision("release", "dave"), env=ts_env, result_type=RunbookView
    )
    released = await result_of(release)
    assert released.outcome is RunbookOutcome.RELEASED
    undone = [
        (c["method"], c["path"].rsplit("/", 1)[-1]) for c in sim.journal.calls(seq) if c["mutation"]
    ]
    assert undone == [
        ("PUT", "vm-web-1-nic"),  # back to its original (no) NSG
        ("DELETE", "stanch-quarantine-rel1"),
        ("DELETE", "stanch-rel1"),
        ("PATCH", "default"),  # the quarantine tag removed
    ]
    after = sim.state.snapshot()
    assert after["locks"] == before["locks"] == []
    # Only the forensic snapshots stay: evidence outlives the quarantine.
    assert sorted(r["id"] for r in after["resources"] if "/snapshots/" not in r["id"]) == sorted(
        r["id"] for r in before["resources"]
    )

    def vm(estate: dict[str, Any]) -> dict[str, Any]:
        return next(r for r in estate["resources"] if r["id"] == VM1)

    assert vm(after)["tags"] == vm(before)["tags"]


async def test_failed_step_rolls_back_what_was_applied(ts_env, runbooks, sim, started):
    sim.faults.add(
        Fault(
            path="networkSecurityGroups/stanch-quarantine",
            method="PUT",
            status=403,
            code="AuthorizationFailed",
            times=None,
        )
    )
    result = await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "quarantine_vm",
            VM1,
            plan=approval_plan(auto_approve=[Risk.HIGH]),
            incident_id="fail1",
        )
    )
    assert result.outcome is RunbookOutcome.FAILED
    assert "AuthorizationFailed" in result.summary and "undid 2 change(s)" in result.summary
    estate = sim.state.snapshot()
    assert estate["locks"] == []
    assert "stanch.quarantine" not in next(r for r in estate["resources"] if r["id"] == VM1)["tags"]
    assert result.applied == []


async def test_restart_vm_is_automatic_when_policy_allows_and_verifies_recovery(
    ts_env, runbooks, sim, started
):
    result = await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "restart_vm",
            VM2,
            plan=approval_plan(auto_approve=[Risk.LOW, Risk.MEDIUM]),
        )
    )
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert [m for m, _ in journal_mutations(sim)] == ["POST"]
    gate = next(s for s in result.steps if s.name == "approval: restart")
    assert gate.detail == "approved by policy (medium risk)"


async def test_verify_recovery_gives_up_at_its_deadline(ts_env, runbooks, sim, started):
    result = await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "verify_recovery",
            VM1,
            params={"healthy_below": 80, "every": 300, "deadline": 1800},
        )
    )
    assert result.outcome is RunbookOutcome.FAILED and "not recovered" in result.summary
    checks = [s for s in result.steps if s.name.startswith("check Percentage CPU")]
    assert len(checks) == 6
    assert journal_mutations(sim) == []


async def test_scale_out_vmss_adds_capacity_within_the_ceiling_and_release_scales_back(
    ts_env, runbooks, sim, started
):
    from stanch.testing.estate import VMSS

    def capacity() -> int:
        vmss = next(r for r in sim.state.snapshot()["resources"] if r["id"] == VMSS)
        return int(vmss["sku"]["capacity"])

    scaled = await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "scale_out_vmss",
            VMSS,
            plan=approval_plan(auto_approve=[Risk.MEDIUM]),
            params={"add": 2, "max_capacity": 10},
        )
    )
    assert scaled.outcome is RunbookOutcome.MITIGATED, scaled.summary
    assert capacity() == 5
    assert journal_mutations(sim) == [("PATCH", "virtualMachineScaleSets/vmss-api")]

    release = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "release",
        VMSS,
        requested_by="carol",
        plan=approval_plan(auto_approve=[Risk.HIGH]),
        params={"runbook": "scale_out_vmss", "applied": [u.model_dump() for u in scaled.applied]},
    )
    assert (await result_of(release)).outcome is RunbookOutcome.RELEASED
    assert capacity() == 3


async def test_scale_out_vmss_at_its_ceiling_hands_over_without_changing_anything(
    ts_env, runbooks, sim, started
):
    from stanch.testing.estate import VMSS

    result = await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "scale_out_vmss",
            VMSS,
            plan=approval_plan(auto_approve=[Risk.MEDIUM]),
            params={"max_capacity": 3},
        )
    )
    assert result.outcome is RunbookOutcome.FAILED and "ceiling" in result.summary
    assert journal_mutations(sim) == []


async def test_bad_params_fail_the_run_instead_of_retrying_forever(ts_env, runbooks, sim, started):
    result = await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "scale_out_vmss",
            VM1,
            params={"add": "lots"},
        )
    )
    assert result.outcome is RunbookOutcome.FAILED and "params: add" in result.summary
