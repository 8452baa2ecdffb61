"""Running runbooks on their own, as tests and drills do, and what they left
behind: azuresim's journal and the audit trail."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from stanch.models.config import ApprovalPolicy, ApprovalTier
from stanch.models.risk import Risk
from stanch.models.runbook import ApprovalPlan, RunbookInput, RunbookResult
from tests.support.decisions import SIGNER
from tests.support.started import Started

ROSTER = ["alice", "bob", "carol", "dave"]


def approval_plan(
    required_high: int = 1,
    auto_approve: list[Risk] | None = None,
    tiers: list[ApprovalTier] | None = None,
) -> ApprovalPlan:
    """carol and dave hold the approver role; alice is on call; bob is neither."""
    return ApprovalPlan(
        policy=ApprovalPolicy(
            required={Risk.LOW: 1, Risk.MEDIUM: 1, Risk.HIGH: required_high},
            auto_approve=auto_approve or [],
            tiers=tiers
            or [
                ApprovalTier(timeout=timedelta(minutes=15)),
                ApprovalTier(people=["dave"], timeout=timedelta(minutes=15)),
            ],
        ),
        approvers=["carol", "dave"],
        on_call=["alice"],
        roster=ROSTER,
        decision_keys={SIGNER.key_id: SIGNER.public_key},
    )


async def start_runbook(
    started: Started,
    client: Client,
    task_queue: str,
    name: str,
    resource_id: str,
    *,
    plan: ApprovalPlan | None = None,
    params: dict[str, Any] | None = None,
    dry_run: bool = False,
    requested_by: str = "stanch",
    incident_id: str | None = None,
) -> WorkflowHandle[Any, Any]:
    incident = incident_id or f"inc{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        name,
        RunbookInput(
            incident_id=incident,
            resource_id=resource_id,
            requested_by=requested_by,
            dry_run=dry_run,
            approval=plan or approval_plan(),
            params=params or {},
            title="test incident",
        ),
        id=f"runbook-{incident}-{name}",
        task_queue=task_queue,
        result_type=RunbookResult,
    )
    return started.add(handle)


async def result_of(handle: WorkflowHandle[Any, Any]) -> RunbookResult:
    result = await handle.result()
    assert isinstance(result, RunbookResult)
    return result


def journal_mutations(sim: Any) -> list[tuple[str, str]]:
    return [
        (c["method"], c["path"].rsplit("/", 2)[-2] + "/" + c["path"].rsplit("/", 1)[-1])
        for c in sim.journal.calls()
        if c["mutation"]
    ]


def audit_records(state_dir: Path) -> list[dict[str, Any]]:
    from stanch.stores.audit import SqliteAuditLog

    return [r["record"] for r in SqliteAuditLog(state_dir / "audit.db").records()]
