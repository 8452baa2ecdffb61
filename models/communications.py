"""Telling stakeholders: status updates, who receives them, and how.

An incident has a communications workflow of its own (workflows/
communications.py, `incident-<id>/comms`) holding its status updates and the
people subscribed to that one incident; subscriptions to a service or a
severity live in a store (stores/subscriptions.py). Each update goes to each
subscriber once, by email or webhook, with the stakeholder-safe text only: an
update's internal note stays on the incident's timeline.

The policy's `communications` section says who leads communications (and is
reminded when no update was posted in time), who else may post, who may
subscribe, which stakeholder groups always hear about which services or
severities, and how to send email.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from stanch.models.duration import Duration
from stanch.models.secret_reference import UnresolvedSecret, resolve_secret
from stanch.models.severity import Severity

ADDRESS_LIMIT = 254  # RFC 5321's longest path
URL_LIMIT = 2048
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
# One address, no display name, nothing a header could be split on.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)")


class CommsName(StrEnum):
    """What the communications workflow's messages travel under."""

    POST_UPDATE = "post_update"
    SUBSCRIBE = "subscribe"
    BRIEF = "brief"  # the incident telling it where it stands (a signal)
    REFRESH_PLAN = "refresh_comms_plan"
    VIEW = "comms"  # the query
    # The signal the incident takes to put a communications line on its timeline.
    TIMELINE = "comms_event"


class ChannelKind(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class Subscriber(BaseModel):
    """Where one stakeholder hears: `email:ops@example.com` or
    `webhook:https://...`. A webhook's URL is its credential: shown and
    logged by its host only (`shown`), never whole."""

    kind: ChannelKind
    address: str

    @classmethod
    def parse(cls, given: str) -> Subscriber:
        """ValueError naming what is wrong with `given`."""
        kind, sep, address = given.strip().partition(":")
        if not sep or kind.lower() not in ("email", "webhook"):
            raise ValueError("channel: give email:ADDRESS or webhook:URL")
        subscriber = cls(kind=ChannelKind(kind.lower()), address=address.strip())
        if problem := subscriber.problem():
            raise ValueError(f"channel: {problem}")
        return subscriber

    def problem(self) -> str | None:
        if self.kind is ChannelKind.EMAIL:
            if len(self.address) > ADDRESS_LIMIT or not _EMAIL.fullmatch(self.address):
                return "not an email address (one address, no name: ops@example.com)"
            return None
        return webhook_problem(self.address)

    @property
    def id(self) -> str:
        """Stable, and free of the address: what idempotency keys and the
        dashboard name a subscriber by."""
        digest = hashlib.sha256(f"{self.kind}:{self.normalised}".encode()).hexdigest()
        return f"{self.kind}-{digest[:16]}"

    @property
    def normalised(self) -> str:
        # Mailbox domains are case-insensitive; webhook URLs are not.
        if self.kind is ChannelKind.EMAIL:
            local, _, domain = self.address.partition("@")
            return f"{local}@{domain.lower()}"
        return self.address

    @property
    def shown(self) -> str:
        if self.kind is ChannelKind.EMAIL:
            return f"email:{self.normalised}"
        host = re.sub(r"^https?://([^/:?#]+).*$", r"\1", self.address)
        return f"webhook:{host}/…"


def webhook_problem(url: str) -> str | None:
    if len(url) > URL_LIMIT:
        return f"webhook url longer than {URL_LIMIT} characters"
    if url.startswith("https://") and len(url) > len("https://"):
        return None
    if _LOOPBACK.match(url):
        return None
    return "webhook url must be https:// (plain http only on loopback: 127.0.0.1, [::1], localhost)"


def _subscriber_spec(value: str) -> str:
    Subscriber.parse(value)
    return value


SubscriberSpec = Annotated[str, AfterValidator(_subscriber_spec)]


# ---- the policy's `communications` section -----------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailSettings(_Strict):
    """The SMTP server updates are sent through. STARTTLS and a login by
    default: a password never crosses the network in clear text."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None  # write it as ${NAME}: it is a credential
    from_address: str
    starttls: bool = True
    # A private CA for the server's certificate (a relay inside the network).
    ca_file: Path | None = None
    timeout: Duration = timedelta(seconds=20)

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("not an email address (one address, no name)")
        return value

    def resolved_password(self) -> str | None:
        """UnresolvedSecret names the variable, never a value."""
        if self.password is None:
            return None
        return resolve_secret(self.password.get_secret_value())


class StakeholderGroup(_Strict):
    """People outside the roster who always hear about some services or
    severities (leadership for every Sev0, a customer team for its service)."""

    name: str = Field(pattern=_ID)
    members: list[SubscriberSpec] = Field(min_length=1)
    services: list[str] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)

    @field_validator("severities", mode="before")
    @classmethod
    def _severities(cls, value: object) -> object:
        return [Severity.parse(v) for v in value] if isinstance(value, list) else value

    def hears(self, service: str | None, severity: Severity) -> bool:
        return (service is not None and service in self.services) or severity in self.severities


class Communications(_Strict):
    # Roster roles whose holders lead communications when the incident names
    # no communications_lead: they may post, and reminders page them.
    lead_roles: list[str] = Field(default_factory=lambda: ["comms"])
    # Who else may post updates: roster ids or roles. Leads always may.
    posters: list[str] = Field(default_factory=list)
    # Who may add subscriptions: roster ids or roles; empty: anyone with a credential.
    may_subscribe: list[str] = Field(default_factory=list)
    # Status changes (opened ... closed) send an update of their own.
    automatic_updates: bool = True
    # No update for this long at this severity: page the communications lead.
    reminders: dict[Severity, Duration] = Field(default_factory=dict)
    groups: list[StakeholderGroup] = Field(default_factory=list)
    email: EmailSettings | None = None
    webhook_timeout: Duration = timedelta(seconds=10)
    # The channels reminders page through (None: every configured channel).
    channels: list[str] | None = None

    @field_validator("reminders", mode="before")
    @classmethod
    def _severity_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {Severity.parse(k): v for k, v in value.items()}
        return value

    @field_validator("reminders")
    @classmethod
    def _positive(cls, value: dict[Severity, timedelta]) -> dict[Severity, timedelta]:
        for severity, every in value.items():
            if every < timedelta(minutes=1):
                raise ValueError(f"{severity}: at least 1m between reminders")
        return value

    @field_validator("webhook_timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=30):
            raise ValueError("must be longer than zero and at most 30s")
        return value


def communications_problems(
    comms: Communications, roster: Iterable[tuple[str, list[str]]], channels: set[str]
) -> list[str]:
    """What pydantic cannot see: a password that does not resolve, names
    that are neither a roster id nor a role anyone holds, unknown channels,
    groups that hear nothing or are named twice. `roster`: (id, roles)."""
    problems: list[str] = []
    people = dict(roster)
    held = {role for roles in people.values() for role in roles}
    for key in ("posters", "may_subscribe"):
        for i, name in enumerate(getattr(comms, key)):
            if name not in people and name not in held:
                problems.append(
                    f"communications.{key}[{i}]: {name!r} is neither on the roster nor a role "
                    "anyone on it holds"
                )
    for i, name in enumerate(comms.channels or []):
        if name not in channels:
            problems.append(f"communications.channels[{i}]: no channel named {name!r}")
    seen: set[str] = set()
    for i, group in enumerate(comms.groups):
        if group.name in seen:
            problems.append(f"communications.groups[{i}].name: {group.name!r} is listed twice")
        seen.add(group.name)
        if not group.services and not group.severities:
            problems.append(
                f"communications.groups[{i}]: name services or severities it hears about"
            )
    if comms.email is not None:
        try:
            comms.email.resolved_password()
        except UnresolvedSecret as e:
            problems.append(f"communications.email.password: {e}")
        if comms.email.password is not None and not comms.email.starttls:
            problems.append(
                "communications.email.starttls: a password is never sent without STARTTLS"
            )
    emails = any(
        Subscriber.parse(m).kind is ChannelKind.EMAIL for g in comms.groups for m in g.members
    )
    if emails and comms.email is None:
        problems.append("communications.email: groups have email members but no SMTP server")
    return problems


class Subscription(BaseModel):
    """A standing subscription to every incident of a service, or of a
    severity (one of the two), kept in the subscription store."""

    subscriber: Subscriber
    service: str | None = Field(default=None, pattern=_ID)
    severity: Severity | None = None
    by: str  # who added it
    at: datetime

    @property
    def scope(self) -> str:
        return f"service:{self.service}" if self.service else f"severity:{self.severity}"
