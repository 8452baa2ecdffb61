"""quarantine_vm's forensic capture, on the time-skipping server with its
activities against azuresim: once isolation is approved, the VM's disks are
snapshotted and its boot diagnostics kept before anything isolates it, each
with its SHA-256 in the audit trail; a release leaves the snapshots; a capture
that fails is recorded and the VM is contained all the same."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from stanch.azuresim.faults import Fault
from stanch.harness.waiting import eventually
from stanch.models.risk import Risk
from stanch.models.runbook import ApprovalDecision, RunbookOutcome, RunbookView, StepStatus
from stanch.testing.decisions import decide
from stanch.testing.estate import RG, VM1
from stanch.testing.runbooks import (
    approval_plan,
    audit_records,
    journal_mutations,
    result_of,
    start_runbook,
)

SNAPSHOTS = "capture forensics: disk snapshots"
BOOT = "capture forensics: boot diagnostics"
CAPTURE = "capture forensics: packet capture"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/stwebprod"


async def quarantine(ts_env: Any, runbooks: Any, started: Any, incident: str, **params: Any) -> Any:
    return await result_of(
        await start_runbook(
            started,
            ts_env.client,
            runbooks.task_queue,
            "quarantine_vm",
            VM1,
            plan=approval_plan(auto_approve=[Risk.HIGH]),
            incident_id=incident,
            params=params or None,
        )
    )


async def pending(handle: Any) -> bool:
    view = await handle.query("status", result_type=RunbookView)
    return view.pending is not None


def snapshots_of(sim: Any, incident: str) -> dict[str, dict[str, Any]]:
    return {
        r["name"]: r
        for r in sim.state.snapshot()["resources"]
        if r["type"] == "Microsoft.Compute/snapshots"
        and r["tags"].get("stanch.incident") == incident
    }


async def test_snapshots_and_boot_diagnostics_come_before_isolation_with_their_hashes_audited(
    ts_env, runbooks, sim, started
):
    result = await quarantine(ts_env, runbooks, started, "fx1")
    assert result.outcome is RunbookOutcome.CONTAINED

    # Azure saw the snapshots taken before the first change to the VM.
    writes = journal_mutations(sim)
    assert writes == [
        ("PUT", "snapshots/stanch-fx1-vm-web-1-osdisk"),
        ("PUT", "snapshots/stanch-fx1-vm-web-1-data0"),
        ("PATCH", "tags/default"),
        ("PUT", "locks/stanch-fx1"),
        ("PUT", "networkSecurityGroups/stanch-quarantine-fx1"),
        ("PUT", "networkInterfaces/vm-web-1-nic"),
    ]
    calls = sim.journal.calls()
    boot = next(c["seq"] for c in calls if c["path"].endswith("/retrieveBootDiagnosticsData"))
    nsg = next(c["seq"] for c in calls if "networkSecurityGroups/stanch-quarantine" in c["path"])
    assert boot < nsg, "the serial log is read before the network is cut"

    steps = [s.name for s in result.steps]
    assert steps.index(SNAPSHOTS) < steps.index(BOOT) < steps.index("tag as quarantined")
    assert steps.index("approval: isolate") < steps.index(SNAPSHOTS)

    # Each capture is evidence: its file's SHA-256 is the one in the audit chain.
    audit = {r["action"]: r for r in audit_records(runbooks.state_dir)}
    for name, step in (
        ("vm-web-1.disk-snapshots.json", SNAPSHOTS),
        ("vm-web-1.boot-diagnostics.json", BOOT),
    ):
        evidence = next(e for e in result.evidence if e.name == name)
        stored = Path(urlparse(evidence.location).path).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == evidence.sha256
        assert audit[step]["outcome"] == "succeeded"
        assert audit[step]["details"]["sha256"] == evidence.sha256
    assert set(snapshots_of(sim, "fx1")) == {
        "stanch-fx1-vm-web-1-osdisk",
        "stanch-fx1-vm-web-1-data0",
    }
    # No undo for evidence: only the quarantine itself can be released.
    assert [u.step for u in result.applied] == [
        "tag as quarantined",
        "lock against deletion",
        "isolate network",
    ]


async def test_release_leaves_the_snapshots_in_place(ts_env, runbooks, sim, started):
    quarantined = await quarantine(ts_env, runbooks, started, "fx2")
    assert quarantined.outcome is RunbookOutcome.CONTAINED
    kept = snapshots_of(sim, "fx2")
    assert len(kept) == 2
    seq = sim.journal.calls()[-1]["seq"]
    release = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "release",
        VM1,
        requested_by="carol",
        incident_id="fx2",
        params={
            "runbook": "quarantine_vm",
            "applied": [u.model_dump() for u in quarantined.applied],
        },
    )
    await eventually(
        lambda: pending(release), timeout=10, what="the release to wait for its approval"
    )
    await decide(
        release,
        "approve",
        ApprovalDecision(step="release", by="dave"),
        env=ts_env,
        result_type=RunbookView,
    )
    assert (await result_of(release)).outcome is RunbookOutcome.RELEASED
    released = [c for c in sim.journal.calls(seq) if c["mutation"]]
    assert released and not any("/snapshots/" in c["path"] for c in released)
    assert snapshots_of(sim, "fx2") == kept, "evidence outlives the quarantine"


async def test_a_failed_capture_is_recorded_and_the_vm_is_contained_anyway(
    ts_env, runbooks, sim, started
):
    # The worker may not take snapshots, and the VM has no boot diagnostics.
    sim.faults.add(
        Fault(path="/snapshots/", method="PUT", status=403, code="AuthorizationFailed", times=None)
    )
    with sim.state.lock:
        sim.state.get(VM1).properties["diagnosticsProfile"] = {
            "bootDiagnostics": {"enabled": False}
        }
    result = await quarantine(ts_env, runbooks, started, "fx3")
    assert result.outcome is RunbookOutcome.CONTAINED
    failed = {s.name: s for s in result.steps if s.status is StepStatus.FAILED}
    assert set(failed) == {SNAPSHOTS, BOOT}
    assert "AuthorizationFailed" in (failed[SNAPSHOTS].detail or "")
    assert "BootDiagnosticsUnavailable" in (failed[BOOT].detail or "")
    audit = [r for r in audit_records(runbooks.state_dir) if r["action"] in (SNAPSHOTS, BOOT)]
    assert {(r["action"], r["outcome"]) for r in audit} >= {(SNAPSHOTS, "failed"), (BOOT, "failed")}
    # Containment went on: the network is cut, the VM locked and tagged.
    assert [m for m in journal_mutations(sim) if "snapshots/" not in m[1]] == [
        ("PATCH", "tags/default"),
        ("PUT", "locks/stanch-fx3"),
        ("PUT", "networkSecurityGroups/stanch-quarantine-fx3"),
        ("PUT", "networkInterfaces/vm-web-1-nic"),
    ]
    assert snapshots_of(sim, "fx3") == {}
    assert [e.name for e in result.evidence] == ["vm-web-1.json"]


async def test_the_policy_can_switch_forensics_off_or_add_a_bounded_packet_capture(
    ts_env, runbooks, sim, started
):
    off = await quarantine(ts_env, runbooks, started, "fx4", forensics=False)
    assert off.outcome is RunbookOutcome.CONTAINED
    assert not any(s.name.startswith("capture forensics") for s in off.steps)
    assert not any("snapshots/" in path for _, path in journal_mutations(sim))

    captured = await quarantine(
        ts_env,
        runbooks,
        started,
        "fx5",
        packet_capture={"storage_account_id": STORAGE, "duration": "PT2M"},
    )
    assert captured.outcome is RunbookOutcome.CONTAINED
    step = next(s for s in captured.steps if s.name == CAPTURE)
    assert step.status is StepStatus.SUCCEEDED and "capturing for 120 s" in (step.detail or "")
    (put,) = [
        c for c in sim.journal.calls() if "/packetCaptures/" in c["path"] and c["method"] == "PUT"
    ]
    assert put["path"].endswith("/packetCaptures/stanch-fx5-vm-web-1")
    assert put["body"]["properties"]["timeLimitInSeconds"] == 120
    nsg = next(c["seq"] for c in sim.journal.calls() if "stanch-quarantine-fx5" in c["path"])
    assert put["seq"] < nsg, "capturing before the network is cut"
