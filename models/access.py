"""Emergency access in the policy: the guests and vendors who may be let in
during an incident (`guests:`, beside the roster), and which Azure roles may
be granted to them for how long (`access.emergency_roles`).

People outside the team (a vendor's engineer, Microsoft support, a central IT
team) are not on the roster: they never act on incidents, they are granted an
Azure role for a bounded time (workflows/access_grant.py). What may be granted
is decided here, with no I/O, so the gateway (a clear 4xx) and the workflow
(the last word) apply the same rule.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stanch.models.duration import Duration, format_duration
from stanch.models.risk import Risk

AZURE_OBJECT_ID = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
GUEST_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
# How long before a guest entry expires `stanch config check` starts to say so.
EXPIRY_WARNING = timedelta(days=14)
# The shortest grant, and the longest any policy may allow. Only the longest
# bounds access; the shortest catches a slip (`--for 4`, read as 4 seconds).
# Seconds, not minutes: a drill or a test holds a grant for real time (Azure
# itself may take minutes to apply an assignment, so real grants are longer).
SHORTEST_GRANT = timedelta(seconds=10)
LONGEST_GRANT = timedelta(days=7)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupportContract(_Strict):
    """What the guest's organisation promised: when they answer and how fast.
    Shown on the incident page so responders know what to expect."""

    hours: str = Field(min_length=1, max_length=200)  # e.g. "24x7", "Mon-Fri 08:00-18:00 CET"
    response_time: Duration  # e.g. 1h for a severity-A case
    reference: str | None = Field(default=None, max_length=200)  # contract or case number

    @field_validator("response_time")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("response_time must be longer than zero")
        return value


class Guest(_Strict):
    """Someone outside the roster who may be granted emergency access."""

    id: str = Field(pattern=GUEST_ID)
    name: str = Field(min_length=1, max_length=200)
    organisation: str = Field(min_length=1, max_length=200)
    contact: str = Field(min_length=1, max_length=200)  # e-mail or phone of the person
    # The Entra object id the role assignment is made for (a user, group or
    # service principal in the tenant, a B2B guest for another company).
    principal_id: str = Field(pattern=AZURE_OBJECT_ID)
    principal_type: str = Field(default="User", pattern=r"^(User|Group|ServicePrincipal)$")
    support: SupportContract | None = None
    # The entry itself expires (a contract ends, a person leaves): after the
    # end of that day (UTC) nothing may be granted to them.
    expires: date

    def expired_at(self, now: datetime) -> bool:
        return now >= self.expires_end

    @property
    def expires_end(self) -> datetime:
        return datetime.combine(self.expires, time(0), tzinfo=UTC) + timedelta(days=1)


def _reader(role: str) -> bool:
    return role.strip().lower().endswith("reader")


class EmergencyRole(_Strict):
    """An Azure role that may be granted in an emergency, and for how long."""

    role: str = Field(min_length=1, max_length=128)  # the built-in or custom role's name
    max_duration: Duration = timedelta(hours=4)
    # Who must approve: medium (one approver, who may be the requester when on
    # call) for roles that only read; high (four eyes: never the requester)
    # for anything that can change. Unset: by the role's name.
    risk: Risk | None = None

    @field_validator("max_duration")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not SHORTEST_GRANT <= value <= LONGEST_GRANT:
            raise ValueError(
                f"max_duration must be between {format_duration(SHORTEST_GRANT)} "
                f"and {format_duration(LONGEST_GRANT)}"
            )
        return value

    @field_validator("risk")
    @classmethod
    def _a_person_decides(cls, value: Risk | None) -> Risk | None:
        if value is Risk.LOW:
            raise ValueError("low: access is always approved by a person (medium or high)")
        return value

    @property
    def approval_risk(self) -> Risk:
        if self.risk is not None:
            return self.risk
        return Risk.MEDIUM if _reader(self.role) else Risk.HIGH


def default_emergency_roles() -> list[EmergencyRole]:
    """Readers of logs and metrics only: what a vendor needs to diagnose."""
    return [
        EmergencyRole(role="Log Analytics Reader"),
        EmergencyRole(role="Monitoring Reader"),
    ]


def find_guest(guests: list[Guest], wanted: str) -> Guest | None:
    """A guest by id or by principal id (either may be given on the command line)."""
    key = wanted.strip().lower()
    return next((g for g in guests if key in (g.id.lower(), g.principal_id.lower())), None)


def find_role(roles: list[EmergencyRole], wanted: str) -> EmergencyRole | None:
    key = wanted.strip().lower()
    return next((r for r in roles if r.role.lower() == key), None)


def grant_refusal(
    guests: list[Guest],
    roles: list[EmergencyRole],
    guest: str,
    role: str,
    duration: timedelta,
    now: datetime,
) -> str | None:
    """Why this grant may not be asked for, naming the field, or None."""
    who = find_guest(guests, guest)
    if who is None:
        listed = ", ".join(g.id for g in guests) or "none"
        return f"to: {guest!r} is not a guest in the policy (guests: {listed})"
    if who.expired_at(now):
        return f"to: the policy's entry for guest {who.id!r} expired on {who.expires.isoformat()}"
    allowed = find_role(roles, role)
    if allowed is None:
        names = ", ".join(repr(r.role) for r in roles) or "none"
        return f"role: {role!r} may not be granted (access.emergency_roles: {names})"
    if duration < SHORTEST_GRANT:
        return f"for: at least {format_duration(SHORTEST_GRANT)}"
    if duration > allowed.max_duration:
        return (
            f"for: {format_duration(duration)} is longer than the "
            f"{format_duration(allowed.max_duration)} {allowed.role!r} may be granted for"
        )
    return None


def guest_problems(guests: list[Guest]) -> list[str]:
    """Two entries for one guest id or one principal: which applies is unclear."""
    problems: list[str] = []
    for i, guest in enumerate(guests):
        for j, earlier in enumerate(guests[:i]):
            if guest.id.lower() == earlier.id.lower():
                problems.append(f"guests[{i}].id: {guest.id!r} is also guests[{j}]")
            elif guest.principal_id.lower() == earlier.principal_id.lower():
                problems.append(f"guests[{i}].principal_id: also guests[{j}] ({earlier.id})")
    return problems


def role_problems(roles: list[EmergencyRole]) -> list[str]:
    problems: list[str] = []
    for i, role in enumerate(roles):
        if not re.fullmatch(r"[\w .()/-]+", role.role):
            problems.append(f"access.emergency_roles[{i}].role: {role.role!r} is not a role name")
        for j, earlier in enumerate(roles[:i]):
            if role.role.lower() == earlier.role.lower():
                problems.append(
                    f"access.emergency_roles[{i}].role: {role.role!r} is also "
                    f"access.emergency_roles[{j}]"
                )
    return problems


def guest_warnings(guests: list[Guest], now: datetime) -> list[str]:
    """What `stanch config check` points out: entries expired or expiring soon."""
    warnings: list[str] = []
    for i, guest in enumerate(guests):
        if guest.expired_at(now):
            warnings.append(
                f"guests[{i}].expires: {guest.id} expired on {guest.expires.isoformat()}; "
                "nothing can be granted to them (renew the entry or remove it)"
            )
        elif guest.expires_end - now <= EXPIRY_WARNING:
            warnings.append(
                f"guests[{i}].expires: {guest.id} expires on {guest.expires.isoformat()}; "
                "renew the entry if their contract goes on"
            )
    return warnings
