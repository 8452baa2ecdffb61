"""Who may approve a step, decided from the approval plan alone: pure and
deterministic, so the same rule runs in an update validator, in the signal
handler, and in tests."""

from __future__ import annotations

from stanch.models.config import ApiRole
from stanch.models.risk import Risk
from stanch.models.runbook import ApprovalPlan


def eligible_approvers(plan: ApprovalPlan, risk: Risk, requested_by: str) -> list[str]:
    """Approver-role holders, plus whoever is on call (if the policy allows),
    plus anyone an approval tier names; for high risk never the requester."""
    people = set(plan.approvers)
    if plan.policy.on_call_may_approve and risk not in plan.policy.reserved_for_approvers:
        people |= set(plan.on_call)
    for tier in plan.policy.tiers:
        people |= set(tier.people)
    if risk is Risk.HIGH:
        people.discard(requested_by)  # four eyes
    return sorted(p for p in people if p in plan.roster)


def refusal(
    plan: ApprovalPlan, risk: Risk, requested_by: str, person: str, already: list[str]
) -> str | None:
    """Why `person` may not approve or reject, or None if they may."""
    if person not in plan.roster:
        return f"{person!r} is not on the roster"
    if risk is Risk.HIGH and person == requested_by:
        return f"four eyes: {person!r} requested this run and cannot decide its high-risk step"
    if person not in eligible_approvers(plan, risk, requested_by):
        if risk in plan.policy.reserved_for_approvers:
            return f"{person!r} may not approve {risk}-risk steps: reserved for approvers"
        return (
            f"{person!r} may not approve {risk}-risk steps "
            "(needs an approver role or to be on call)"
        )
    if person in already:
        return f"{person!r} has already approved this step"
    return None


def credential_needed(plan: ApprovalPlan, risk: Risk, person: str) -> ApiRole:
    """The least credential role that may carry `person`'s decision: being on
    call is a responder's standing; anything else the policy reserves for
    approvers needs an approver credential, whatever the roster says."""
    if (
        plan.policy.on_call_may_approve
        and risk not in plan.policy.reserved_for_approvers
        and person in plan.on_call
    ):
        return ApiRole.RESPONDER
    named = any(person in tier.people for tier in plan.policy.tiers)
    if named and risk not in plan.policy.reserved_for_approvers:
        return ApiRole.RESPONDER  # the policy named them for this gate
    return ApiRole.APPROVER
