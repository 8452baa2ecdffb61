"""The runbook kit's pure books (workflows/runbook/_saga.py and
_approval_gate.py): what a run did and what it may still undo, and what each
approval gate was told. The kit's workflow code only schedules activities
around them; tests/runbooks/test_runbooks.py runs the whole kit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stanch.models.config import ApprovalPolicy
from stanch.models.evidence import EvidenceRef
from stanch.models.risk import Risk
from stanch.models.runbook import (
    ApprovalDecision,
    ApprovalPlan,
    PendingApproval,
    RunbookInput,
    RunbookSpec,
    StepStatus,
)
from stanch.models.status import IncidentStatus, RunbookOutcome
from stanch.workflows.runbook._approval_gate import ApprovalBook
from stanch.workflows.runbook._saga import Saga, describe, finish_details, gate_step, request_id_of

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
SPEC = RunbookSpec(
    name="quarantine_vm",
    description="d",
    risk=Risk.HIGH,
    author="a",
    approvals={"isolate": Risk.HIGH},
)
INP = RunbookInput(
    incident_id="inc-1",
    resource_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
    requested_by="stanch",
    approval=ApprovalPlan(
        policy=ApprovalPolicy(),
        approvers=["ann"],
        on_call=["oncall"],
        roster=["ann", "oncall", "rex"],
    ),
)


def decision(by: str, step: str = "isolate", comment: str | None = None) -> ApprovalDecision:
    return ApprovalDecision(by=by, step=step, comment=comment)


def test_a_step_is_recorded_from_begin_to_finish_and_evidence_is_kept():
    saga = Saga()
    record = saga.begin("capture evidence", False, StepStatus.RUNNING, T0)
    ref = EvidenceRef(name="vm1.json", location="/e/vm1.json", sha256="ab" * 32, size=10)
    saga.finish(record, StepStatus.SUCCEEDED, describe(ref), T0 + timedelta(seconds=4), ref)
    assert saga.steps == [record]
    assert (record.status, record.ended_at) == (StepStatus.SUCCEEDED, T0 + timedelta(seconds=4))
    assert record.detail == f"vm1.json, 10 bytes, sha256 {'ab' * 32}"
    assert saga.evidence == [ref]
    assert finish_details(record, record.detail, False, ref)["evidence"] == "/e/vm1.json"


def test_undos_are_handed_over_once_and_kept_when_undoing_fails():
    saga = Saga()
    saga.applied_change("lock", _remove_lock, INP)
    assert [(u.step, u.activity) for u in saga.applied] == [("lock", "_remove_lock")]
    assert saga.applied[0].arg["incident_id"] == "inc-1"  # the argument, as JSON
    taken = saga.take_applied()
    assert saga.applied == []
    saga.still_applied(taken)
    assert saga.applied == taken


async def _remove_lock(arg: object) -> None:  # an activity's name, for applied_change
    return None


def test_long_results_are_cut_for_the_timeline_and_request_ids_found():
    assert describe(None) is None
    assert describe("x" * 500) == "x" * 200
    long = describe(INP.approval)
    assert long is not None and len(long) == 200 and long.endswith("...")

    class Reply:
        request_ids = ["req-2", "req-3"]

    assert request_id_of(Reply()) == "req-2"
    assert request_id_of(object()) is None


def test_an_early_approval_is_kept_until_its_gate():
    book = ApprovalBook()
    book.record(decision("ann", comment="go"), approve=True)
    assert book.on("isolate").approvals == ["ann"]
    assert book.on("isolate").comments == ["ann: go"]
    assert book.decided("isolate", required=1)
    assert not book.decided("isolate", required=2)


def test_a_decision_updates_the_approval_waiting_on_that_gate_only():
    book = ApprovalBook()
    book.pending = PendingApproval(
        runbook_workflow_id="w",
        step="isolate",
        risk=Risk.HIGH,
        eligible=["ann", "oncall"],
        required=2,
        requested_at=T0,
        deadline=T0 + timedelta(minutes=15),
    )
    book.record(decision("ann"), approve=True)
    book.record(decision("oncall", step="other"), approve=True)
    assert book.pending.approvals == ["ann"]


def test_why_a_decision_on_a_gate_is_refused():
    book, saga = ApprovalBook(), Saga()
    refuse = book.refusal
    assert refuse(decision("ann"), SPEC, INP, RunbookOutcome.CONTAINED, saga) == (
        "runbook quarantine_vm has already finished (contained)"
    )
    assert refuse(decision("ann", step="reboot"), SPEC, INP, None, saga) == (
        "step: 'reboot' is not an approval gate of quarantine_vm (isolate)"
    )
    assert refuse(decision("rex"), SPEC, INP, None, saga) == (
        "'rex' may not approve high-risk steps (needs an approver role or to be on call)"
    )
    assert refuse(decision("ann"), SPEC, INP, None, saga) is None

    book.record(decision("ann"), approve=True)
    gate = saga.begin(gate_step("isolate"), False, StepStatus.WAITING, T0)
    saga.finish(gate, StepStatus.APPROVED, "approved by ann", T0)
    assert refuse(decision("oncall"), SPEC, INP, None, saga) == "step 'isolate' is already approved"

    rejected = ApprovalBook()
    rejected.record(decision("oncall"), approve=False)
    assert rejected.refusal(decision("ann"), SPEC, INP, None, Saga()) == (
        "step 'isolate' was already rejected by oncall"
    )


def test_a_runbook_input_carries_the_incident_status_as_before():
    # The status was a plain string in recorded histories: same JSON both ways.
    dumped = INP.model_copy(update={"status": IncidentStatus.CONTAINED}).model_dump(mode="json")
    assert dumped["status"] == "contained"
    assert RunbookInput.model_validate(dumped).status is IncidentStatus.CONTAINED
    assert RunbookSpec.model_validate({**SPEC.model_dump(), "outcome": "contained"}).outcome is (
        RunbookOutcome.CONTAINED
    )
