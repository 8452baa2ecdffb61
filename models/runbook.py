"""Runbooks as data: what one declares, what it is given, what it reports, and
the approvals it waits for. (Its audit records are models/audit.py, its
evidence models/evidence.py, the kill switch it asks models/toggles.py.)"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from stanch.models.config import AlertMatch, ApprovalPolicy
from stanch.models.decision import PersonRequest
from stanch.models.evidence import EvidenceRef
from stanch.models.free_text import RemarkText
from stanch.models.risk import Risk
from stanch.models.severity import Severity
from stanch.models.status import IncidentStatus

# Re-exported: it lives in models/status.py beside IncidentStatus, which a
# runbook's spec names.
from stanch.models.status import RunbookOutcome as RunbookOutcome


class RunbookSpec(BaseModel):
    """What a runbook declares about itself (`spec = RunbookSpec(...)` on the class)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    risk: Risk  # the highest risk of anything it does
    author: str
    matches: AlertMatch = Field(default_factory=AlertMatch)
    # Every approval gate, by step name, so an approval that arrives early can be
    # checked against the right risk before the gate is reached.
    approvals: dict[str, Risk] = Field(default_factory=dict)
    outcome: RunbookOutcome = RunbookOutcome.MITIGATED  # on success: contained or mitigated


class ApprovalPlan(BaseModel):
    """Who may approve, resolved from stanch.yaml when the incident loads its plan."""

    policy: ApprovalPolicy
    approvers: list[str]  # roster ids holding an approver role
    on_call: list[str]  # roster ids on call when the plan was loaded
    roster: list[str]
    # key id -> public key (base64): whose signatures on decisions count
    decision_keys: dict[str, str] = Field(default_factory=dict)


class RunbookInput(BaseModel):
    """The part of every runbook's input that stanch fills in. A runbook with
    parameters subclasses it (`class VerifyInput(RunbookInput): threshold: float`)."""

    incident_id: str
    incident_workflow_id: str | None = None  # None when run on its own (tests, drills)
    resource_id: str
    requested_by: str = "stanch"  # who asked for the run: never its approver at high risk
    dry_run: bool = False
    approval: ApprovalPlan
    params: dict[str, Any] = Field(default_factory=dict)
    # The first alert's dimensions (a log alert's `ClientIP`, ...), name -> value:
    # what a runbook acting on a detail of the alert (block_ip) reads.
    dimensions: dict[str, str] = Field(default_factory=dict)
    # For the pages an approval gate sends: what the incident is.
    title: str = ""
    severity: Severity = Severity.SEV3
    status: IncidentStatus = IncidentStatus.TRIGGERED
    service: str | None = None


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PLANNED = "planned"  # a dry run's mutation: recorded, not done
    WAITING = "waiting"  # for approval
    APPROVED = "approved"
    DENIED = "denied"
    UNDONE = "undone"
    REFUSED = "refused"  # a change outside remediation.scopes: not attempted


class StepRecord(BaseModel):
    name: str
    status: StepStatus
    mutates: bool = False
    started_at: datetime
    ended_at: datetime | None = None
    detail: str | None = None


class Undo(BaseModel):
    """How to take back one applied mutation: an activity and its argument."""

    step: str
    activity: str
    arg: dict[str, Any]


class ApprovalDecision(PersonRequest):
    """A long comment is cut with a marker, never refused: the decision is what matters."""

    step: str
    comment: RemarkText = None


class PendingApproval(BaseModel):
    runbook_workflow_id: str
    step: str
    risk: Risk
    eligible: list[str]
    required: int
    approvals: list[str] = Field(default_factory=list)
    tier: int = 1
    requested_at: datetime
    deadline: datetime


class RunbookResult(BaseModel):
    runbook: str
    outcome: RunbookOutcome
    summary: str
    steps: list[StepRecord]
    applied: list[Undo] = Field(default_factory=list)  # what is still in place, in order
    evidence: list[EvidenceRef] = Field(default_factory=list)


class RunbookView(BaseModel):
    """The `status` query, and what the incident shows of its runbook."""

    runbook: str
    workflow_id: str
    dry_run: bool
    steps: list[StepRecord]
    pending: PendingApproval | None
    outcome: RunbookOutcome | None = None
    applied: list[Undo] = Field(default_factory=list)


class RunbookEvent(BaseModel):
    """Sent by a runbook to its incident, so the incident's timeline and state
    tell the whole story."""

    runbook: str
    workflow_id: str
    kind: str  # step_started, step_succeeded, approval_requested, approved, finished, ...
    summary: str
    actor: str | None = None
    view: RunbookView
    result: RunbookResult | None = None


RunbookResult.model_rebuild()
