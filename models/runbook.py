"""Runbooks as data: what one declares, what it is given, what it reports, and
the approvals, audit records and evidence it leaves behind."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from stanch.models.config import AlertMatch, ApprovalPolicy, Detector
from stanch.models.decision import PersonRequest
from stanch.models.free_text import RemarkText
from stanch.models.risk import Risk
from stanch.models.severity import Severity


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
    outcome: str = "mitigated"  # incident status on success: contained or mitigated


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
    # For the pages an approval gate sends: what the incident is.
    title: str = ""
    severity: Severity = Severity.SEV3
    status: str = "triggered"
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


class RunbookOutcome(StrEnum):
    CONTAINED = "contained"
    NOT_NEEDED = "not_needed"  # its check found nothing to remediate
    MITIGATED = "mitigated"
    RELEASED = "released"
    PLANNED = "planned"  # dry run
    DENIED = "denied"  # an approval was refused or timed out
    HALTED = "halted"  # the kill switch stopped it
    REFUSED = "refused"  # asked to change something outside remediation.scopes
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def succeeded(self) -> bool:
        return self in (
            RunbookOutcome.CONTAINED,
            RunbookOutcome.MITIGATED,
            RunbookOutcome.RELEASED,
            RunbookOutcome.PLANNED,
        )


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


class RemediationCheck(BaseModel):
    runbook: str


class RemediationAllowed(BaseModel):
    allowed: bool
    reason: str | None = None


class AuditEntry(BaseModel):
    """One fact for the audit trail: who did what to what, when, with what result."""

    incident_id: str | None
    actor: str
    action: str
    target: str | None = None
    outcome: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = None  # Azure's x-ms-request-id, when Azure was called
    at: datetime | None = None  # set by the workflow (workflow.now()) for replay safety


class AuditReceipt(BaseModel):
    seq: int
    hash: str


class EvidenceRequest(BaseModel):
    incident_id: str
    resource_id: str
    log_query: str | None = None  # KQL against the resource; None: no logs
    log_window: timedelta = timedelta(hours=1)


class EvidenceRef(BaseModel):
    name: str
    location: str  # where the evidence file is kept
    sha256: str
    size: int

    def summary_line(self) -> str:
        return f"{self.name}, {self.size} bytes, sha256 {self.sha256}"


RunbookResult.model_rebuild()


class DetectorRun(BaseModel):
    detector: Detector


class DetectorVerdict(BaseModel):
    detector: str
    firing: bool
    observed: str  # what was seen: "2 rows", "Percentage CPU 97.0"


class DetectorSignal(BaseModel):
    """A detector's verdict, as an alert for the intake."""

    detector: Detector
    verdict: DetectorVerdict
    run_key: str  # unique per scheduled run: the alert instance id
    at: datetime
