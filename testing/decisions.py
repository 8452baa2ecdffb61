"""People's decisions in tests that talk to Temporal directly, signed with the
test run's decision key as the gateway would sign them.

Importing this module gives the test process a decision key
(STANCH_DECISION_KEY, unless one is set already): every Settings() built
afterwards reads it, so every worker the tests start trusts it and every
gateway they start signs with it. The pytest plugin imports it first thing."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from stanch.client.updates import decide_step
from stanch.gateway.signing import DecisionSigner, new_private_key_text, parse_private_key
from stanch.models.config import ApiRole
from stanch.models.decision import PersonRequest
from stanch.models.runbook import ApprovalDecision, RunbookView

TEST_DECISION_KEY = os.environ.setdefault("STANCH_DECISION_KEY", new_private_key_text())
SIGNER = DecisionSigner(parse_private_key(TEST_DECISION_KEY))

Request = TypeVar("Request", bound=PersonRequest)


async def signed(
    workflow_id: str,
    action: str,
    request: Request,
    *,
    env: WorkflowEnvironment | None = None,
    role: ApiRole = ApiRole.APPROVER,
    issued_at: datetime | None = None,
) -> Request:
    """`request` as the gateway would forward it for a credential of `role`.
    Give `env` when its clock is skipped ahead of the wall clock."""
    if issued_at is None and env is not None and env.supports_time_skipping:
        issued_at = await env.get_current_time()
    return SIGNER.sign(workflow_id, action, request, role, issued_at)


async def decide(
    handle: Any,
    action: str,
    request: PersonRequest,
    *,
    env: WorkflowEnvironment | None = None,
    role: ApiRole = ApiRole.APPROVER,
    result_type: type[BaseModel] | None = None,
) -> Any:
    """Send a signed update, the way the on-call API does."""
    proven = await signed(handle.id, action, request, env=env, role=role)
    return await handle.execute_update(action, proven, result_type=result_type)


async def approve(
    handle: WorkflowHandle[Any, Any],
    step: str,
    by: str,
    *,
    env: WorkflowEnvironment | None = None,
    comment: str | None = None,
) -> RunbookView:
    """`by` approves the gate `step` of a runbook started on its own
    (`start_runbook`), with an approver's credential. A refusal raises the
    SDK's WorkflowUpdateFailedError carrying the workflow's reason."""
    return await _decide_gate(
        handle, "approve", ApprovalDecision(step=step, by=by, comment=comment), env
    )


async def reject(
    handle: WorkflowHandle[Any, Any],
    step: str,
    by: str,
    *,
    env: WorkflowEnvironment | None = None,
    comment: str | None = None,
) -> RunbookView:
    """`by` rejects the gate `step`: one eligible rejection denies it at once."""
    return await _decide_gate(
        handle, "reject", ApprovalDecision(step=step, by=by, comment=comment), env
    )


async def _decide_gate(
    handle: WorkflowHandle[Any, Any],
    verb: str,
    decision: ApprovalDecision,
    env: WorkflowEnvironment | None,
) -> RunbookView:
    view: RunbookView = await decide(handle, verb, decision, env=env, result_type=RunbookView)
    return view


async def approve_waiting(
    client: Client, incident: str, step: str, by: str, comment: str | None = None
) -> RunbookView:
    """Approve the runbook of `incident` waiting at `step`, signed for an
    approver's credential, as the on-call API would forward it (for tests
    that run no gateway)."""
    decision = ApprovalDecision(step=step, by=by, comment=comment)
    return await decide_step(client, incident, decision, approve=True, sign=as_approver)


def as_approver(workflow_id: str, update: str, request: Request) -> Request:
    """The client room's `sign`: what the gateway would forward for an approver."""
    return SIGNER.sign(workflow_id, update, request, ApiRole.APPROVER)
