"""Emergency access: Azure RBAC role assignments through
`azure-mgmt-authorization`, and what the policy says about a grant.

A grant's assignment is named after the incident and the grant (a uuid5), and
read before it is written: a retried create finds its own assignment instead
of making a second one. Revoking is a delete that treats "already gone" as
done, and every failure of it retryable: a revocation must never give up
(the grant workflow retries it with backoff and pages meanwhile).
"""

from __future__ import annotations

from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import azure_call, keep_request_id
from stanch.activities.response_plan import approval_plan
from stanch.models.access import find_guest, find_role, grant_refusal
from stanch.models.access_grant import (
    AccessPlan,
    AccessPlanRequest,
    GrantAccessRequest,
    ListGrantsRequest,
    RevocationResult,
    RevokeAccessRequest,
    RoleAssignmentList,
    RoleAssignmentRecord,
)
from stanch.models.config import ConfigError, StanchConfig
from stanch.models.risk import Risk
from stanch.stores.policy import PolicySource

ROLE_NOT_GRANTABLE = "RoleNotGrantable"


def _subscription(scope: str) -> str:
    parts = [p for p in scope.split("/") if p]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ApplicationError(
            f"scope must start with /subscriptions/<id>: {scope!r}",
            type="InvalidRequest",
            non_retryable=True,
        )
    return parts[1]


class AccessPlanActivities:
    """What the worker's policy says about one grant: read when the grant
    starts, so whoever started it decides neither the rule nor the approvers."""

    def __init__(self, policy: PolicySource, trusted_keys: dict[str, str] | None = None) -> None:
        self._policy = policy
        self._trusted_keys = trusted_keys or {}

    @activity.defn
    async def load_access_plan(self, request: AccessPlanRequest) -> AccessPlan:
        """Read-only, so safe to retry."""
        try:
            config, _ = self._policy.current()
        except ConfigError as e:
            raise ApplicationError(str(e), type="ConfigError") from None
        refusal = grant_refusal(
            config.guests,
            config.access.emergency_roles,
            request.guest,
            request.role,
            request.duration,
            datetime.now(UTC),
        )
        role = find_role(config.access.emergency_roles, request.role)
        plan = approval_plan(config, config.escalation_policies[_policy_name(config, request)])
        plan.decision_keys = {**self._trusted_keys, **plan.decision_keys}
        # A person always decides a grant, whatever the policy auto-approves for runbooks.
        plan.policy = plan.policy.model_copy(update={"auto_approve": []})
        return AccessPlan(
            approval=plan,
            guest=find_guest(config.guests, request.guest),
            risk=role.approval_risk if role else Risk.HIGH,
            refusal=refusal,
        )


def _policy_name(config: StanchConfig, request: AccessPlanRequest) -> str:
    """The escalation policy of the incident's service: whose on-call may approve."""
    service = next((s for s in config.services if s.name == request.service), None)
    if service is not None:
        return service.escalation_policy
    fallback = next((s for s in config.services if s.name == config.incident.default_service), None)
    return fallback.escalation_policy if fallback else "default"


class AccessActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    @activity.defn
    async def grant_access(self, request: GrantAccessRequest) -> RoleAssignmentRecord:
        """Creates the role assignment, or finds the one a retry already made."""
        scope = request.scope.rstrip("/")
        client = self._azure.authorization(_subscription(scope))
        async with azure_call(f"read role assignment {request.assignment_name} on {scope}"):
            try:
                held = await client.role_assignments.get(scope, request.assignment_name)
            except ResourceNotFoundError:
                held = None
        if held is not None and (held.principal_id or "").lower() == request.principal_id.lower():
            return _record(held, None)
        definition = await self._role_definition(scope, request.role)
        request_ids: list[str] = []
        async with azure_call(f"grant {request.role} on {scope}"):
            made = await client.role_assignments.create(
                scope,
                request.assignment_name,
                RoleAssignmentCreateParameters(
                    role_definition_id=definition,
                    principal_id=request.principal_id,
                    principal_type=request.principal_type,
                    description=request.description or None,
                ),
                cls=keep_request_id(request_ids),
            )
        return _record(made, request_ids[0] if request_ids else None)

    async def _role_definition(self, scope: str, role: str) -> str:
        """The role definition's id, found by name at the scope (as `az role
        assignment create --role NAME` does)."""
        client = self._azure.authorization(_subscription(scope))
        escaped = role.replace("'", "''")
        async with azure_call(f"find role {role!r} at {scope}"):
            named = client.role_definitions.list(scope, f"roleName eq '{escaped}'")
            found = [d async for d in named]
        if not found or not found[0].id:
            raise ApplicationError(
                f"no role definition named {role!r} at {scope}",
                type=ROLE_NOT_GRANTABLE,
                non_retryable=True,
            )
        return str(found[0].id)

    @activity.defn
    async def revoke_access(self, request: RevokeAccessRequest) -> RevocationResult:
        """Deletes the role assignment; one already gone is revoked too. Every
        failure is retryable: a revocation that gives up leaves a door open."""
        scope = request.scope.rstrip("/")
        client = self._azure.authorization(_subscription(scope))
        request_ids: list[str] = []
        try:
            async with azure_call(f"revoke role assignment {request.assignment_name} on {scope}"):
                gone = await client.role_assignments.delete(
                    scope, request.assignment_name, cls=keep_request_id(request_ids)
                )
        except ApplicationError as e:
            raise ApplicationError(
                e.message, *e.details, type=e.type, next_retry_delay=e.next_retry_delay
            ) from None
        return RevocationResult(
            assignment_name=request.assignment_name,
            deleted=gone is not None,
            request_id=request_ids[0] if request_ids else None,
        )

    @activity.defn
    async def list_grants(self, request: ListGrantsRequest) -> RoleAssignmentList:
        """Role assignments at and above `scope` (of one principal if given)."""
        scope = request.scope.rstrip("/")
        client = self._azure.authorization(_subscription(scope))
        wanted = f"principalId eq '{request.principal_id}'" if request.principal_id else None
        async with azure_call(f"list role assignments at {scope}"):
            found = [a async for a in client.role_assignments.list_for_scope(scope, wanted)]
        return RoleAssignmentList(assignments=[_record(a, None) for a in found])


def _record(assignment: object, request_id: str | None) -> RoleAssignmentRecord:
    return RoleAssignmentRecord(
        assignment_id=str(getattr(assignment, "id", "") or ""),
        assignment_name=str(getattr(assignment, "name", "") or ""),
        scope=str(getattr(assignment, "scope", "") or ""),
        role_definition_id=str(getattr(assignment, "role_definition_id", "") or ""),
        principal_id=str(getattr(assignment, "principal_id", "") or ""),
        request_id=request_id,
    )
