"""Running a runbook on its own, as an incident would start it, and what it
left behind: azuresim's journal and the audit trail."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from stanch.azuresim import AzureSim
from stanch.models.config import ApprovalPolicy, ApprovalTier
from stanch.models.risk import Risk
from stanch.models.runbook import ApprovalPlan, RunbookInput, RunbookResult
from stanch.testing.decisions import SIGNER
from stanch.testing.started import Started

ROSTER = ["alice", "bob", "carol", "dave"]


def approval_plan(
    required_high: int = 1,
    auto_approve: list[Risk] | None = None,
    tiers: list[ApprovalTier] | None = None,
) -> ApprovalPlan:
    """carol and dave hold the approver role; alice is on call; bob is neither.
    Two 15-minute tiers (the second pages dave): an unanswered gate is denied
    after 30 minutes, which the time-skipping server skips in milliseconds."""
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
    workflow_id: str | None = None,
    dimensions: dict[str, str] | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start runbook `name` on `resource_id` as incident `incident_id` (a fresh
    one unless given) would, with no incident workflow around it; `started`
    terminates it when the test ends. `dimensions` are the alert's, as an
    incident hands them on (block_ip reads the address there)."""
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
            dimensions=dimensions or {},
            title="test incident",
        ),
        id=workflow_id or f"runbook-{incident}-{name}",
        task_queue=task_queue,
        result_type=RunbookResult,
    )
    return started.add(handle)


async def result_of(handle: WorkflowHandle[Any, Any]) -> RunbookResult:
    """The runbook's result; awaiting it lets the time-skipping server skip
    whatever the runbook waits for (an unanswered gate, a recovery check)."""
    result = await handle.result()
    assert isinstance(result, RunbookResult)
    return result


def journal_mutations(sim: AzureSim) -> list[tuple[str, str]]:
    """(method, last two segments of the path) of every call that changed
    azuresim's estate, in order: `[("PATCH", "tags/default")]`."""
    return [
        (c["method"], c["path"].rsplit("/", 2)[-2] + "/" + c["path"].rsplit("/", 1)[-1])
        for c in sim.journal.calls()
        if c["mutation"]
    ]


def audit_records(state_dir: Path) -> list[dict[str, Any]]:
    """The audit trail a worker with `state_dir` kept, oldest first."""
    from stanch.stores.audit import SqliteAuditLog

    return [r["record"] for r in SqliteAuditLog(state_dir / "audit.db").records()]
