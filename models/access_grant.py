"""One emergency access grant as data: what a person asks for, what the grant
workflow is given and reports, and what its activities send to Azure.

The policy side (guests, emergency roles, the rule deciding what may be
granted) is models/access.py; the workflow is workflows/access_grant.py.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from stanch.models.access import Guest, SupportContract
from stanch.models.config import ApprovalPolicy
from stanch.models.decision import PersonRequest
from stanch.models.duration import Duration
from stanch.models.free_text import RemarkText
from stanch.models.risk import Risk
from stanch.models.runbook import ApprovalPlan, RunbookInput, RunbookView

# The runbook-kit name of the grant workflow (its spec, its audit actor).
ACCESS_GRANT = "access_grant"
# Decisions on a grant are taken on this gate: `stanch approve ID access-<grant>`.
GATE_PREFIX = "access-"
# The update that carries a person's request for access: what the gateway signs.
REQUEST_ACCESS = "request_access"
REVOKE_ACCESS = "revoke_access"
INCIDENT_CLOSED = "incident_closed"
# The role assignment's name is a uuid5 in this namespace of the incident and
# the grant, so a retried create finds its own assignment instead of a second one.
ASSIGNMENT_NAMESPACE = uuid.UUID("5f0c1c2e-7a51-4c5e-9a59-3c1d6a0e2b17")


def grant_id_of(incident_id: str, principal_id: str, role: str, scope: str) -> str:
    """The grant's id from what it grants: the same request sent twice (a
    retried POST) is one grant, not two role assignments."""
    text = "|".join([incident_id, principal_id.lower(), role.lower(), scope.lower()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def grant_workflow_id(incident_workflow_id: str, grant_id: str) -> str:
    return f"{incident_workflow_id}/access-{grant_id}"


def assignment_name(incident_id: str, grant_id: str) -> str:
    return str(uuid.uuid5(ASSIGNMENT_NAMESPACE, f"{incident_id}/{grant_id}"))


class GrantStatus(StrEnum):
    REQUESTED = "requested"  # waiting for approval
    ACTIVE = "active"  # the role assignment exists
    REVOKING = "revoking"  # its revocation is being retried
    REVOKED = "revoked"
    DENIED = "denied"  # rejected, or not approved in time: nothing was granted
    REFUSED = "refused"  # the policy or the scope does not allow it: nothing was granted
    FAILED = "failed"  # Azure refused the assignment: nothing was granted

    @property
    def is_open(self) -> bool:
        return self in (GrantStatus.REQUESTED, GrantStatus.ACTIVE, GrantStatus.REVOKING)


class AccessRequest(PersonRequest):
    """A person asks that `guest` be given `role` on `scope` for `duration`."""

    guest: str = Field(min_length=1, max_length=200)  # a guest's id or principal id
    role: str = Field(min_length=1, max_length=128)
    scope: str = Field(min_length=1, max_length=1024)
    duration: Duration
    reason: RemarkText = None


class RevokeAccess(PersonRequest):
    reason: RemarkText = None


def no_approvers() -> ApprovalPlan:
    return ApprovalPlan(policy=ApprovalPolicy(), approvers=[], on_call=[], roster=[])


class AccessGrantInput(RunbookInput):
    """What the grant workflow is started with. Who may approve, and what may
    be granted, the workflow reads from the worker's policy itself: whoever
    starts it decides neither (`approval` is replaced when it starts)."""

    approval: ApprovalPlan = Field(default_factory=no_approvers)
    grant_id: str
    request: AccessRequest


class AccessGrantView(BaseModel):
    """A grant as the incident and its page show it."""

    grant_id: str
    workflow_id: str
    guest: str
    principal_id: str | None = None
    organisation: str | None = None
    support: SupportContract | None = None
    role: str
    scope: str
    duration: timedelta
    requested_by: str
    requested_at: datetime
    status: GrantStatus = GrantStatus.REQUESTED
    risk: Risk | None = None
    approved_by: list[str] = Field(default_factory=list)
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_because: str | None = None
    assignment_id: str | None = None
    detail: str | None = None
    view: RunbookView | None = None  # the approval gate and steps (the runbook kit's status)

    @property
    def gate(self) -> str:
        return f"{GATE_PREFIX}{self.grant_id}"


class AccessEvent(BaseModel):
    """Sent by a grant to its incident: the timeline line and the grant as it stands."""

    kind: str
    summary: str
    grant: AccessGrantView


class AccessPlanRequest(BaseModel):
    guest: str
    role: str
    duration: timedelta
    service: str | None = None


class AccessPlan(BaseModel):
    """What the worker's policy says about one grant, read when it starts."""

    approval: ApprovalPlan
    guest: Guest | None = None
    risk: Risk = Risk.HIGH
    refusal: str | None = None  # why it may not be granted (models/access.py)


class GrantAccessRequest(BaseModel):
    """One role assignment to create. The scope is the only ARM id in it: it
    is what the runbook kit checks against remediation.scopes."""

    scope: str
    assignment_name: str
    role: str  # the role definition's name, resolved at the scope
    principal_id: str
    principal_type: str = "User"
    description: str = ""


class RoleAssignmentRecord(BaseModel):
    assignment_id: str
    assignment_name: str
    scope: str
    role_definition_id: str
    principal_id: str
    request_id: str | None = None


class RevokeAccessRequest(BaseModel):
    scope: str
    assignment_name: str
    grant_id: str


class RevocationResult(BaseModel):
    assignment_name: str
    deleted: bool  # False: it was gone already (deleted by hand, or a retried delete)
    request_id: str | None = None


class ListGrantsRequest(BaseModel):
    scope: str
    principal_id: str | None = None


class RoleAssignmentList(BaseModel):
    assignments: list[RoleAssignmentRecord]
