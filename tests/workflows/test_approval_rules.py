"""Who may decide an approval gate (workflows/approval.py), as tables: the
roster, on call, the approver role, tiers that name people, reserved risks,
four eyes, N-of-M, and the credential each decision needs. The same rules run
in the runbook's update validators and signal handlers; tests/runbooks/test_runbooks.py
attacks them through a running workflow, here every row in microseconds."""

from __future__ import annotations

import pytest

from stanch.models.config import ApiRole, ApprovalPolicy, ApprovalTier
from stanch.models.risk import Risk
from stanch.models.runbook import ApprovalPlan
from stanch.workflows.approval import credential_needed, eligible_approvers, refusal

# ann holds the approver role; oncall is on call; tina is named by an approval
# tier; rex is on the roster and nothing more; ghost is not on the roster.
ROSTER = ["ann", "oncall", "tina", "rex"]


def plan(
    on_call_may_approve: bool = True,
    reserved: tuple[Risk, ...] = (),
    tier_people: tuple[str, ...] = (),
    approvers: tuple[str, ...] = ("ann",),
) -> ApprovalPlan:
    return ApprovalPlan(
        policy=ApprovalPolicy(
            on_call_may_approve=on_call_may_approve,
            reserved_for_approvers=list(reserved),
            tiers=[ApprovalTier(people=list(tier_people))],
        ),
        approvers=list(approvers),
        on_call=["oncall"],
        roster=ROSTER,
    )


@pytest.mark.parametrize(
    ("policy", "risk", "requested_by", "eligible"),
    [
        (plan(), Risk.LOW, "stanch", ["ann", "oncall"]),
        (plan(), Risk.HIGH, "stanch", ["ann", "oncall"]),
        # Four eyes: at high risk the requester drops out, at lower risk not.
        (plan(), Risk.HIGH, "oncall", ["ann"]),
        (plan(), Risk.MEDIUM, "oncall", ["ann", "oncall"]),
        (plan(on_call_may_approve=False), Risk.LOW, "stanch", ["ann"]),
        # A reserved risk is for approvers only, whoever is on call.
        (plan(reserved=(Risk.HIGH,)), Risk.HIGH, "stanch", ["ann"]),
        (plan(reserved=(Risk.HIGH,)), Risk.MEDIUM, "stanch", ["ann", "oncall"]),
        # A tier that names someone makes them eligible, reserved or not.
        (plan(tier_people=("tina",)), Risk.LOW, "stanch", ["ann", "oncall", "tina"]),
        (plan(reserved=(Risk.HIGH,), tier_people=("tina",)), Risk.HIGH, "stanch", ["ann", "tina"]),
        # Nobody off the roster, whatever names them.
        (
            plan(tier_people=("ghost",), approvers=("ann", "ghost")),
            Risk.LOW,
            "stanch",
            ["ann", "oncall"],
        ),
        (plan(approvers=()), Risk.HIGH, "oncall", []),
    ],
)
def test_who_is_eligible(policy, risk, requested_by, eligible):
    assert eligible_approvers(policy, risk, requested_by) == eligible


@pytest.mark.parametrize(
    ("policy", "risk", "requested_by", "person", "already", "reason"),
    [
        (plan(), Risk.LOW, "stanch", "ann", [], None),
        (plan(), Risk.LOW, "stanch", "oncall", [], None),
        (plan(), Risk.LOW, "stanch", "ghost", [], "'ghost' is not on the roster"),
        (
            plan(),
            Risk.HIGH,
            "ann",
            "ann",
            [],
            "four eyes: 'ann' requested this run and cannot decide its high-risk step",
        ),
        (plan(), Risk.MEDIUM, "ann", "ann", [], None),  # four eyes is for high risk
        (
            plan(),
            Risk.LOW,
            "stanch",
            "rex",
            [],
            "'rex' may not approve low-risk steps (needs an approver role or to be on call)",
        ),
        (
            plan(reserved=(Risk.HIGH,)),
            Risk.HIGH,
            "stanch",
            "oncall",
            [],
            "'oncall' may not approve high-risk steps: reserved for approvers",
        ),
        (plan(), Risk.LOW, "stanch", "ann", ["ann"], "'ann' has already approved this step"),
        # N-of-M: a second, different approver is welcome.
        (plan(), Risk.LOW, "stanch", "oncall", ["ann"], None),
    ],
)
def test_why_a_decision_is_refused(policy, risk, requested_by, person, already, reason):
    assert refusal(policy, risk, requested_by, person, already) == reason


@pytest.mark.parametrize(
    ("policy", "risk", "person", "needed"),
    [
        # Being on call is a responder's standing...
        (plan(), Risk.HIGH, "oncall", ApiRole.RESPONDER),
        # ...unless the risk is reserved, or on call may not approve at all.
        (plan(reserved=(Risk.HIGH,)), Risk.HIGH, "oncall", ApiRole.APPROVER),
        (plan(on_call_may_approve=False), Risk.LOW, "oncall", ApiRole.APPROVER),
        # A tier named them for this gate.
        (plan(tier_people=("tina",)), Risk.MEDIUM, "tina", ApiRole.RESPONDER),
        (plan(reserved=(Risk.HIGH,), tier_people=("tina",)), Risk.HIGH, "tina", ApiRole.APPROVER),
        # The approver role on the roster needs an approver credential too.
        (plan(), Risk.LOW, "ann", ApiRole.APPROVER),
    ],
)
def test_the_credential_a_decision_needs(policy, risk, person, needed):
    assert credential_needed(policy, risk, person) is needed
