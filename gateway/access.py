"""Emergency access over the on-call API: ask that a guest be granted an Azure
role on one scope for a while, list an incident's grants (and the guests'
support contracts), revoke one.

Asking and revoking need a responder's credential, as the other actions on an
incident do; the gateway signs the request for that credential's person, and
the grant's workflow checks the signature, the policy and the scope again and
asks for approval (`stanch approve ID access-<grant>`). What the policy alone
refuses (a guest not listed or expired, a role not allowed, too long, a scope
outside remediation.scopes) is a 422 naming the field, and nothing starts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from stanch.client.access import incident_access, request_access, revoke_access
from stanch.client.access_rules import access_refusals
from stanch.client.errors import IncidentRequestError
from stanch.gateway.api import Caller, OnCall, RoleCheck, SignedFor
from stanch.gateway.signing import DecisionSigner
from stanch.models.access import Guest, SupportContract, find_guest
from stanch.models.access_grant import AccessGrantView, AccessRequest, RevokeAccess
from stanch.models.config import ApiRole, StanchConfig
from stanch.models.duration import Duration
from stanch.models.free_text import RemarkText


class AccessBody(BaseModel):
    guest: str = Field(min_length=1, max_length=200)  # a guest's id or Entra object id
    role: str = Field(min_length=1, max_length=128)  # as access.emergency_roles names it
    scope: str = Field(min_length=1, max_length=1024)  # the narrowest ARM id that will do
    duration: Duration  # e.g. "2h"; a number is seconds
    reason: RemarkText = None


class RevokeBody(BaseModel):
    reason: RemarkText = None


class GuestCard(BaseModel):
    """Who may be called in, and what their organisation's contract promises."""

    id: str
    name: str
    organisation: str
    contact: str
    support: SupportContract | None
    expires: date

    @classmethod
    def of(cls, guest: Guest) -> GuestCard:
        return cls(
            id=guest.id,
            name=guest.name,
            organisation=guest.organisation,
            contact=guest.contact,
            support=guest.support,
            expires=guest.expires,
        )


class IncidentGrants(BaseModel):
    incident_id: str
    grants: list[AccessGrantView]  # newest first


class AccessListing(BaseModel):
    incidents: list[IncidentGrants]
    guests: list[GuestCard]  # the policy's guests whose entry has not expired


def current_guests(policy: StanchConfig, now: datetime | None = None) -> list[GuestCard]:
    """The guests a grant may still be asked for (an expired entry is refused)."""
    at = now or datetime.now(UTC)
    return [GuestCard.of(g) for g in policy.guests if not g.expired_at(at)]


def access_router(oncall: OnCall, problem: Callable[[int, str, str], Exception]) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["on-call"])
    signer = DecisionSigner.from_settings(oncall.settings)
    viewer = Depends(RoleCheck(oncall, ApiRole.VIEWER))
    responder = Depends(RoleCheck(oncall, ApiRole.RESPONDER))

    @router.get("/access", response_model=AccessListing)
    async def list_open_access(who: Caller = viewer) -> AccessListing:
        """Grants of every open incident that has any, and the guests' contracts."""
        found = [
            IncidentGrants(
                incident_id=d.state.incident_id,
                grants=sorted(d.state.access, key=lambda g: g.requested_at, reverse=True),
            )
            for d in await oncall.list_open()
            if d.state.access
        ]
        return AccessListing(incidents=found, guests=current_guests(oncall.policy()))

    @router.get("/incidents/{incident_id}/access", response_model=AccessListing)
    async def list_access(incident_id: str, who: Caller = viewer) -> AccessListing:
        """The incident's grants (state, expiry, approvals) and the guests' contracts."""
        try:
            grants = await incident_access(await oncall.client(), incident_id)
        except IncidentRequestError as e:
            raise oncall.answer(e) from None
        return AccessListing(
            incidents=[IncidentGrants(incident_id=incident_id, grants=grants)],
            guests=current_guests(oncall.policy()),
        )

    @router.post("/incidents/{incident_id}/access", response_model=AccessGrantView, status_code=202)
    async def ask_access(
        incident_id: str, body: AccessBody, who: Caller = responder
    ) -> AccessGrantView:
        """Ask that a guest be granted a role on a scope for `duration`. The
        grant waits for approval on gate `access-<grant_id>`; four eyes (not
        the requester) for roles that can change things."""
        policy = oncall.policy()
        problems = access_refusals(
            policy, body.guest, body.role, body.scope, body.duration, datetime.now(UTC)
        )
        if problems:
            raise problem(422, "invalid", "; ".join(problems))
        guest = find_guest(policy.guests, body.guest)
        assert guest is not None  # access_refusals said it is listed
        request = AccessRequest(
            by=who.person,
            guest=guest.id,
            role=body.role,
            scope=body.scope.rstrip("/"),
            duration=body.duration,
            reason=body.reason,
        )
        try:
            return await request_access(
                await oncall.client(),
                oncall.settings.task_queue,
                incident_id,
                request,
                principal_id=guest.principal_id,
                sign=SignedFor(signer, who.role),
            )
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    @router.post(
        "/incidents/{incident_id}/access/{grant_id}/revoke", response_model=AccessGrantView
    )
    async def revoke(
        incident_id: str, grant_id: str, body: RevokeBody, who: Caller = responder
    ) -> AccessGrantView:
        """End a grant now (or withdraw it while it waits for approval)."""
        try:
            return await revoke_access(
                await oncall.client(),
                incident_id,
                grant_id,
                RevokeAccess(by=who.person, reason=body.reason),
                sign=SignedFor(signer, who.role),
            )
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    return router
