"""An incident as the IncidentWorkflow holds it, and the messages it accepts."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from stanch.models.access_grant import AccessGrantView
from stanch.models.alert import AlertEvent
from stanch.models.chat import GateAsk
from stanch.models.config import EscalationPolicy, Schedule
from stanch.models.correlation import AlertPart
from stanch.models.decision import PersonRequest, SpentDecisions
from stanch.models.free_text import NOTE_LIMIT, RemarkText
from stanch.models.maintenance import MaintenanceWindow
from stanch.models.runbook import ApprovalPlan, PendingApproval, RunbookResult, RunbookView
from stanch.models.severity import Severity

# Re-exported: models/status.py only breaks the incident <-> runbook cycle.
from stanch.models.status import IncidentStatus as IncidentStatus


class Role(StrEnum):
    INCIDENT_COMMANDER = "incident_commander"
    TECH_LEAD = "tech_lead"
    COMMUNICATIONS_LEAD = "communications_lead"


class TimelineEntry(BaseModel):
    at: datetime
    kind: str  # alert_fired, alert_repeated, paged, acknowledged, resolved, ...
    summary: str
    actor: str | None = None  # a roster id, or "azure-monitor" / "stanch"
    count: int = 1  # alert_repeated entries fold a run of repeats into one line
    # Set only on the one "folded" entry that stands for earlier entries
    # (workflows/timeline.py): how many of each kind, and the last one's time.
    folded_kinds: dict[str, int] | None = None
    until: datetime | None = None


class RosterEntry(BaseModel):
    id: str
    name: str
    roles: list[str] = Field(default_factory=list)


class ResponsePlan(BaseModel):
    """What an incident needs from stanch.yaml, loaded by an activity so that the
    workflow's validators can decide synchronously. Holds no secrets: channels
    are passed by name and resolved to URLs only inside the notifier."""

    service: str
    policy_name: str
    policy: EscalationPolicy
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    roster: list[RosterEntry]
    reopen_window: timedelta
    warning: str | None = None  # set when the policy file on disk is invalid
    approval: ApprovalPlan | None = None
    runbook: RunbookChoice | None = None  # what remediates this incident, if anything
    # The service's quiet hours: a page due inside one waits for its end.
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    def on_roster(self, person_id: str) -> bool:
        return any(p.id == person_id for p in self.roster)

    def display_name(self, person_id: str) -> str:
        return next((p.name for p in self.roster if p.id == person_id), person_id)


class RunbookChoice(BaseModel):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False


class Escalation(BaseModel):
    """Where paging stands. `next_tier` is the index of the tier to page next."""

    active: bool = True
    next_tier: int = 0
    round: int = 0
    next_page_at: datetime | None = None
    pages_sent: int = 0


class IncidentState(BaseModel):
    incident_id: str
    workflow_id: str
    title: str
    status: IncidentStatus = IncidentStatus.TRIGGERED
    severity: Severity
    service: str | None = None
    alert_rule: str
    alert_rule_id: str | None = None
    resources: list[str] = Field(default_factory=list)
    opened_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    closed_at: datetime | None = None
    roles: dict[Role, str] = Field(default_factory=dict)
    alert_count: int = 0
    last_alert_at: datetime | None = None
    escalation: Escalation = Field(default_factory=Escalation)
    runs: int = 1  # how many workflow runs (continue-as-new) the incident spans
    monitoring_service: str | None = None
    # The first alert's dimensions (bounded in models/alert.py): runbooks get them.
    dimensions: dict[str, str] = Field(default_factory=dict)
    runbook: RunbookView | None = None  # the remediation in progress or last run
    runbook_result: RunbookResult | None = None
    release: RunbookView | None = None  # an approved undo of the remediation
    # Emergency access grants for guests (workflows/access_grant.py), as each last reported.
    access: list[AccessGrantView] = Field(default_factory=list)
    # A grouped incident's related alerts, one per fingerprint (models/correlation.py).
    parts: list[AlertPart] = Field(default_factory=list)

    def runbook_awaiting(self, step: str) -> RunbookView | None:
        """The runbook a decision on `step` is for: the one waiting on that gate,
        else one still running (an early approval is kept until its gate)."""
        # A grant's gate is named after it (`access-<grant>`): matched by name only.
        granting = [g.view for g in self.access if g.view and g.status.is_open]
        for view in granting:
            if view.pending and view.pending.step == step:
                return view
        views = [v for v in (self.release, self.runbook) if v is not None]
        waiting = next((v for v in views if v.pending and v.pending.step == step), None)
        return waiting or next((v for v in views if v.outcome is None), None)

    @property
    def pending_approvals(self) -> list[PendingApproval]:
        grants = [g.view for g in self.access if g.status.is_open]
        return [v.pending for v in (self.runbook, self.release, *grants) if v and v.pending]


class IncidentInput(BaseModel):
    """Starts or continues an incident. `carried` is set only by continue-as-new."""

    incident_id: str
    first_alert: AlertEvent
    carried: CarriedIncident | None = None


class CarriedIncident(BaseModel):
    state: IncidentState
    timeline: list[TimelineEntry]
    plan: ResponsePlan | None
    seen_alerts: list[str]  # recent dedup keys, oldest first
    spent: SpentDecisions = Field(default_factory=SpentDecisions)  # decisions acted on


class IncidentView(BaseModel):
    """The `state` query: everything the CLI and dashboard show at a glance."""

    state: IncidentState
    plan_loaded: bool


class Acknowledge(PersonRequest):
    """A long note is cut with a marker, never refused: the ack is what matters."""

    note: RemarkText = None


class Resolve(PersonRequest):
    """A long note is cut with a marker, never refused: the resolve is what matters."""

    note: RemarkText = None


class AssignRole(PersonRequest):
    role: Role
    assignee: str


class AddNote(PersonRequest):
    """The note is the whole request: one over NOTE_LIMIT is refused (422 naming
    `text`), so its author can shorten it rather than lose its end."""

    text: str = Field(min_length=1, max_length=NOTE_LIMIT)


class RequestRelease(PersonRequest):
    """Undo what the runbook applied (e.g. lift a quarantine), after approval.
    A long reason is cut with a marker, never refused."""

    reason: RemarkText = None


class ChangeStatus(PersonRequest):
    """Record progress a human made by hand (contained, mitigated). A long note
    is cut with a marker, never refused."""

    status: IncidentStatus
    note: RemarkText = None


class UpdateResult(BaseModel):
    incident_id: str
    status: IncidentStatus
    changed: bool  # False when the request was already true (a retried ack)


class PlanRequest(BaseModel):
    rule: str
    targets: list[str]
    monitoring_service: str | None = None


class Page(BaseModel):
    """One page to one tier's people, through the policy's channels."""

    incident_id: str
    workflow_id: str
    title: str
    severity: Severity
    status: IncidentStatus
    service: str | None
    resources: list[str]
    recipients: list[RosterEntry]
    tier: int  # 1-based, as people count them; 0 for a broadcast
    round: int
    channels: list[str] | None
    reason: str  # "opened", "escalated: tier 1 did not acknowledge within 15m", ...
    approval: GateAsk | None = None  # an approval request's gate: chat pages get its buttons


class PageResult(BaseModel):
    delivered: list[str]  # channel names
    failed: list[str]
    reasons: dict[str, str] = Field(default_factory=dict)  # failed channel -> why (no URL)


IncidentInput.model_rebuild()


class PriorityChange(BaseModel):
    """An incident's task priority raised to its severity's (a more severe
    alert joined it): Temporal serves its timers and pages ahead of less
    severe incidents' work from then on, and its running runbooks' steps."""

    workflow_id: str
    priority_key: int = Field(ge=1, le=5)
    runbooks: list[str] = []  # running when it was raised: they follow
