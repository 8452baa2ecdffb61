"""A person's signed request, as the workflow it was sent to checks and spends
it: decisions.py's pure rules, given this workflow's id and clock. Incidents,
runbooks, access grants and communications take people's requests alike."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.models.config import ApiRole
    from stanch.models.decision import PersonRequest, SpentDecisions
    from stanch.workflows.decisions import proof_refusal, spend


def unproven(
    request: PersonRequest,
    *,
    action: str,
    keys: dict[str, str],
    spent: SpentDecisions,
    minimum: ApiRole,
) -> str | None:
    """Why `request` is not proven to be a person's `action` on this workflow,
    by a credential of at least `minimum`, or None."""
    return proof_refusal(
        request.proof,
        workflow_id=workflow.info().workflow_id,
        action=action,
        request=request,
        keys=keys,
        now=workflow.now(),
        spent=spent,
        minimum=minimum,
    )


def spend_once(spent: SpentDecisions, request: PersonRequest) -> None:
    """Remembers the request's proof as used. Two updates carrying one proof
    may both pass their validators before either runs: the second fails here."""
    if request.proof is not None and request.proof.nonce in spent.nonces:
        raise ApplicationError("decision already used", type="DecisionReplayed", non_retryable=True)
    spend(spent, request.proof, workflow.now())
