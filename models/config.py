"""`stanch.yaml`: the response plan. Who is on the roster, who is on call when,
how each service escalates, where pages go.

Everything a human edits is validated here, and every problem is reported with
the path of the offending key (`escalation_policies.db.tiers[1].people[0]`), so
`stanch config check` can tell an on-call engineer exactly what to fix.
Reading the file (YAML, repeated keys, relative paths) is stores/policy.py's.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from stanch.models.access import (
    EmergencyRole,
    Guest,
    default_emergency_roles,
    guest_problems,
    role_problems,
)
from stanch.models.chat import SLACK_USER, Chat, chat_problems
from stanch.models.communications import Communications, communications_problems
from stanch.models.correlation import Correlation
from stanch.models.duration import Duration
from stanch.models.errors import describe_validation_error
from stanch.models.maintenance import MaintenanceWindow
from stanch.models.policy_checks import duplicate_problems, secret_problems
from stanch.models.risk import Risk
from stanch.models.secret_reference import UnresolvedSecret, resolve_secret
from stanch.models.severity import Severity

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"  # ids and names in stanch.yaml
_ID = NAME_PATTERN
# An importable module: dotted Python identifiers (ASCII, as package names are).
MODULE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
MIN_TOKEN_LENGTH = 32  # an API token must not be guessable


def _module_name(value: str) -> str:
    if not re.fullmatch(MODULE_NAME, value):
        raise ValueError(
            f"{value!r} is not a module name (dotted Python identifiers, "
            "e.g. myteam_runbooks or myteam.runbooks)"
        )
    return value


ModuleName = Annotated[str, AfterValidator(_module_name)]


class _Strict(BaseModel):
    # A typo in a policy file must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid")


class Person(_Strict):
    id: str = Field(pattern=_ID)
    name: str | None = None
    email: str | None = None
    roles: list[str] = Field(default_factory=list)
    # The identity provider's immutable id for this person (Entra's `oid`, or
    # `sub`): what a sign-in is matched by. Names and emails can change hands.
    oidc_subject: str | None = Field(default=None, min_length=1)
    # Their Slack user id (U0123…): who clicks a page's button (models/chat.py).
    slack: str | None = Field(default=None, pattern=SLACK_USER)

    @property
    def display(self) -> str:
        return self.name or self.id


class Schedule(_Strict):
    """A rotation: `rotation[k]` is on call during the k-th shift after `starts`."""

    rotation: list[str] = Field(min_length=1)
    shift: Duration = timedelta(days=7)
    starts: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    @field_validator("shift")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("shift must be longer than zero")
        return value

    @field_validator("starts")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def on_call_at(self, when: datetime) -> str:
        shifts = int((when - self.starts) / self.shift)
        return self.rotation[shifts % len(self.rotation)]


class Tier(_Strict):
    people: list[str] = Field(default_factory=list)
    schedules: list[str] = Field(default_factory=list)
    timeout: Duration = timedelta(minutes=15)

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("timeout must be longer than zero")
        return value


class AfterLastTier(StrEnum):
    REPEAT = "repeat"  # start again at tier 1, `repeat` more times
    BROADCAST = "broadcast"  # page everyone in every tier at once, then stop
    STOP = "stop"


class EscalationPolicy(_Strict):
    tiers: list[Tier] = Field(min_length=1)
    after_last_tier: AfterLastTier = AfterLastTier.REPEAT
    repeat: int = Field(default=2, ge=0, le=100)
    channels: list[str] | None = None  # None: every configured channel


class AlertMatch(_Strict):
    """All given lists must match (each list matches if any pattern does).
    Patterns are shell globs compared case-insensitively."""

    rules: list[str] = Field(default_factory=list)
    resource_groups: list[str] = Field(default_factory=list)
    resource_types: list[str] = Field(default_factory=list)
    resource_ids: list[str] = Field(default_factory=list)
    monitoring_services: list[str] = Field(default_factory=list)


class ApprovalTier(_Strict):
    """Who is paged while an approval waits. A tier naming nobody pages every
    eligible approver."""

    people: list[str] = Field(default_factory=list)
    schedules: list[str] = Field(default_factory=list)
    timeout: Duration = timedelta(minutes=15)


class ApprovalPolicy(_Strict):
    approver_roles: list[str] = Field(default_factory=lambda: ["approver"])
    on_call_may_approve: bool = True
    # Risks that being on call is not enough for: only approver-role holders
    # (and people an approval tier names) may decide them.
    reserved_for_approvers: list[Risk] = Field(default_factory=list)
    # How many distinct approvers each risk needs (N of the eligible M).
    required: dict[Risk, int] = Field(
        default_factory=lambda: {Risk.LOW: 1, Risk.MEDIUM: 1, Risk.HIGH: 1}
    )
    auto_approve: list[Risk] = Field(default_factory=list)  # risks that need no human
    tiers: list[ApprovalTier] = Field(default_factory=lambda: [ApprovalTier()], min_length=1)

    @field_validator("required")
    @classmethod
    def _at_least_one(cls, value: dict[Risk, int]) -> dict[Risk, int]:
        for risk, count in value.items():
            if count < 1:
                raise ValueError(f"{risk}: at least one approver is required")
        return value

    def needed(self, risk: Risk) -> int:
        return self.required.get(risk, 1)


class RunbookBinding(_Strict):
    """Run `runbook` for alerts it matches (its own declared match unless given)."""

    runbook: str
    match: AlertMatch | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False


class Service(_Strict):
    name: str = Field(pattern=_ID)
    escalation_policy: str
    match: AlertMatch = Field(default_factory=AlertMatch)
    # Related alerts of this service grouped into one incident (models/correlation.py).
    correlate: Correlation | None = None


class ChannelFormat(StrEnum):
    GENERIC = "generic"
    SLACK = "slack"
    TEAMS = "teams"


class WebhookChannel(_Strict):
    name: str = Field(pattern=_ID)
    type: Literal["webhook"]
    # Chat webhook URLs embed their credential; `${VAR}` keeps it out of the file.
    url: SecretStr
    format: ChannelFormat = ChannelFormat.GENERIC
    # Bounded: escalation must not stall behind one slow chat service.
    timeout: Duration = timedelta(seconds=10)

    @field_validator("timeout")
    @classmethod
    def _bounded_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=30):
            raise ValueError("timeout must be longer than zero and at most 30s")
        return value

    @field_validator("url")
    @classmethod
    def _literal_url_is_https(cls, value: SecretStr) -> SecretStr:
        # `${VAR}` URLs are checked when resolved; never echo the URL (the secret).
        literal = value.get_secret_value()
        if "$" not in literal and (problem := _webhook_url_problem(literal)):
            raise ValueError(problem)
        return value

    def resolved_url(self) -> str:
        """The URL to post to; a ValueError starting `channel <name>: ` says why not."""
        try:
            url = resolve_secret(self.url.get_secret_value())
        except UnresolvedSecret as e:
            raise ValueError(f"channel {self.name}: url {e}") from None
        if problem := _webhook_url_problem(url):
            raise ValueError(f"channel {self.name}: {problem}")
        return url


def _webhook_url_problem(url: str) -> str | None:
    # The URL carries the webhook's credential: only TLS may carry it off this machine.
    if url.startswith("https://") and len(url) > len("https://"):
        return None
    if re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)", url):
        return None
    return "url must be https:// (plain http only on loopback: 127.0.0.1, [::1], localhost)"


class FileChannel(_Strict):
    """Appends one JSON line per page: the embedded default, and what drills read."""

    name: str = Field(pattern=_ID)
    type: Literal["file"]
    path: Path


Channel = WebhookChannel | FileChannel


class IncidentSettings(_Strict):
    # A resolved incident stays open this long so a flapping alert reopens it
    # instead of paging for a brand-new incident.
    reopen_window: Duration = timedelta(minutes=30)
    default_service: str = "default"


class Detector(_Strict):
    """Detection without an Azure alert rule: a query or a metric checked on a
    schedule, opening incidents through the same intake as Azure Monitor."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    resource_id: str
    every: Duration = timedelta(minutes=5)
    severity: Severity = Severity.SEV3
    description: str | None = None
    query: str | None = None  # KQL against resource_id; fires when it returns >= min_rows rows
    min_rows: int = Field(default=1, ge=1)
    metric: str | None = None  # fires when its latest value is above / below the bound
    metric_namespace: str | None = None
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Detector:
        if (self.query is None) == (self.metric is None):
            raise ValueError("give exactly one of query or metric")
        if self.metric is not None and (self.above is None) == (self.below is None):
            raise ValueError("a metric detector needs exactly one of above or below")
        if self.every < timedelta(minutes=1):
            raise ValueError("every: at least 1m (a detector is not a load test)")
        return self


class ApiRole(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(ApiRole).index(self)


class ApiToken(_Strict):
    """A bearer token for the on-call API, naming the person it speaks for."""

    person: str
    role: ApiRole
    token: SecretStr  # write it as ${ENV_VAR}: it is a credential

    def resolved(self) -> str | None:
        """The token to compare with, or None when it cannot be used (unset,
        too short): a policy that slipped past loading still admits nobody."""
        try:
            return self.usable()
        except UnresolvedSecret:
            return None

    def usable(self) -> str:
        token = resolve_secret(self.token.get_secret_value())
        if len(token) < MIN_TOKEN_LENGTH:
            raise UnresolvedSecret(
                f"{len(token)} characters; an API token needs at least {MIN_TOKEN_LENGTH} "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return token


class OidcAccess(_Strict):
    """People sign in with their identity provider (Entra ID or any OIDC
    issuer); its JWTs are verified against the issuer's published keys."""

    issuer: str  # e.g. https://login.microsoftonline.com/<tenant>/v2.0
    audience: list[str] = Field(min_length=1)  # our app's client id and/or URI
    jwks_uri: str | None = None  # found through the issuer's discovery if unset
    # People are matched by `subject_claim` to `roster[].oidc_subject`. Entra's
    # `oid` by default: immutable and the same for every app of the tenant, so
    # one value serves the API and the dashboard (Entra's `sub` differs per
    # app). Other providers: `sub` (unique for the pinned issuer).
    subject_claim: str = "oid"
    person_claim: str = "preferred_username"  # display only, unless the opt-in below
    # Opt-in fallback for people without `oidc_subject`: match `person_claim`
    # to roster id or email. Those claims are mutable (whoever gets the name
    # next is that person), so `stanch config check` warns while it is on.
    trust_mutable_names: bool = False
    role_claim: str = "roles"  # the app roles assigned to the person
    roles: dict[str, ApiRole] = Field(min_length=1)  # claim value -> API role
    # Dashboard single sign-on (authorization code + PKCE). API callers bring
    # their own tokens and need none of it.
    client_id: str | None = None
    client_secret: SecretStr | None = None  # write it as ${ENV_VAR}; confidential clients only
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])

    @property
    def audiences(self) -> list[str]:
        """ID tokens from the sign-in are issued for the client id."""
        return [*self.audience, *([self.client_id] if self.client_id else [])]

    def resolved_secret(self) -> str | None:
        """None without a secret, or when it cannot be resolved (checked at load)."""
        if self.client_secret is None:
            return None
        try:
            return resolve_secret(self.client_secret.get_secret_value())
        except UnresolvedSecret:
            return None

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        # Keys fetched in clear text could be swapped by anyone on the path.
        if value is None or value.startswith("https://"):
            return value
        if re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)", value):
            return value
        raise ValueError(f"{value!r}: must be https:// (plain http only on loopback)")


class DecisionKey(_Strict):
    """A public key whose signatures on people's decisions the workflows accept
    (the gateway's; list the old and the new one while rotating)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # a label for people; proofs use the key
    public_key: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$")  # base64 of 32 bytes


class Access(_Strict):
    tokens: list[ApiToken] = Field(default_factory=list)
    decision_keys: list[DecisionKey] = Field(default_factory=list)
    oidc: OidcAccess | None = None
    # Azure roles `stanch access grant` may give a guest, and for how long
    # (models/access.py); by default only readers of logs and metrics.
    emergency_roles: list[EmergencyRole] = Field(default_factory=default_emergency_roles)


AZURE_SUBSCRIPTION = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
# A resource group name (letters, digits, - _ . ( )) or a shell glob of one.
RESOURCE_GROUP_PATTERN = r"^[-\w.()*?\[\]]{1,90}$"


class RemediationScope(_Strict):
    """Where runbooks may change things: resource groups of one subscription,
    and, when `tags` is given, only resources that carry every one of them."""

    subscription: str = Field(pattern=AZURE_SUBSCRIPTION)
    # Names or shell globs, compared case-insensitively as Azure does; `["*"]`
    # admits every group of the subscription and must be written on purpose.
    resource_groups: list[str] = Field(min_length=1)
    tags: dict[str, str] = Field(default_factory=dict)  # name: value, all required

    @field_validator("resource_groups")
    @classmethod
    def _group_names(cls, value: list[str]) -> list[str]:
        for group in value:
            if not re.fullmatch(RESOURCE_GROUP_PATTERN, group):
                raise ValueError(f"{group!r} is not a resource group name or glob")
        return value


class Remediation(_Strict):
    """What runbooks may change. The alert picks the resource a runbook acts on,
    so whoever holds the intake token would pick it: these scopes bound it.
    None configured means nothing may be changed (dry runs still run)."""

    scopes: list[RemediationScope] = Field(default_factory=list)


class StanchConfig(_Strict):
    roster: list[Person] = Field(min_length=1)
    # People outside the roster who may be granted emergency access (models/access.py).
    guests: list[Guest] = Field(default_factory=list)
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    escalation_policies: dict[str, EscalationPolicy] = Field(min_length=1)
    services: list[Service] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    incident: IncidentSettings = Field(default_factory=IncidentSettings)
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    runbooks: list[RunbookBinding] = Field(default_factory=list)
    # Modules (importable on every worker and gateway) whose runbooks, and
    # activities from their `stanch_activities(context)`, this policy may bind,
    # beside stanch's own and installed packages' `stanch.runbooks` entry points.
    runbook_packages: list[ModuleName] = Field(default_factory=list)
    detectors: list[Detector] = Field(default_factory=list)
    access: Access = Field(default_factory=Access)
    remediation: Remediation = Field(default_factory=Remediation)
    chat: Chat = Field(default_factory=Chat)  # acting from chat (docs/chat.md)
    # Status updates to stakeholders (models/communications.py).
    communications: Communications = Field(default_factory=Communications)
    # Quiet hours: alerts recorded without paging (models/maintenance.py).
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    @field_validator("runbook_packages")
    @classmethod
    def _listed_once(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            if name in value[:i]:
                raise ValueError(f"[{i}]: {name!r} is listed twice")
        return value

    def person(self, person_id: str) -> Person | None:
        return next((p for p in self.roster if p.id == person_id), None)

    def person_signed_in(self, claims: Mapping[str, Any], oidc: OidcAccess) -> Person | None:
        """The roster person a verified token speaks for: by its immutable
        subject; by user name or email only where the policy opted in, and
        never for a person who has a subject (a rename must not take them over)."""
        subject = claims.get(oidc.subject_claim)
        if isinstance(subject, str) and subject:
            found = next((p for p in self.roster if p.oidc_subject == subject), None)
            if found is not None:
                return found
        name = claims.get(oidc.person_claim)
        if not oidc.trust_mutable_names or not isinstance(name, str):
            return None
        wanted = name.casefold()
        return next(
            (
                p
                for p in self.roster
                if p.oidc_subject is None
                and (p.id.casefold() == wanted or (p.email or "").casefold() == wanted)
            ),
            None,
        )

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def service_for(self, rule: str, targets: list[str]) -> Service | None:
        for service in self.services:
            if alert_matches(service.match, rule, targets):
                return service
        return None

    def runbook_problems(self, loaded: Collection[str]) -> list[str]:
        """Bindings that name no loaded runbook. Never skipped over: an alert
        meant for that runbook would run the next binding's instead."""
        names = ", ".join(sorted(loaded)) or "none"
        return [
            f"runbooks[{i}].runbook: no runbook named {b.runbook!r} is loaded (loaded: "
            f"{names}; add its package to runbook_packages or install it)"
            for i, b in enumerate(self.runbooks)
            if b.runbook not in loaded
        ]

    def reference_problems(self) -> list[str]:
        """Cross-references pydantic cannot see: names that must exist elsewhere."""
        problems: list[str] = []
        people = {p.id for p in self.roster}
        for name, schedule in self.schedules.items():
            for i, pid in enumerate(schedule.rotation):
                if pid not in people:
                    problems.append(f"schedules.{name}.rotation[{i}]: {pid!r} is not on the roster")
        channels = {c.name for c in self.channels}
        for name, policy in self.escalation_policies.items():
            for t, tier in enumerate(policy.tiers):
                where = f"escalation_policies.{name}.tiers[{t}]"
                if not tier.people and not tier.schedules:
                    problems.append(f"{where}: a tier must name people or schedules")
                for i, pid in enumerate(tier.people):
                    if pid not in people:
                        problems.append(f"{where}.people[{i}]: {pid!r} is not on the roster")
                for i, sid in enumerate(tier.schedules):
                    if sid not in self.schedules:
                        problems.append(f"{where}.schedules[{i}]: no schedule named {sid!r}")
            for i, ch in enumerate(policy.channels or []):
                if ch not in channels:
                    problems.append(
                        f"escalation_policies.{name}.channels[{i}]: no channel named {ch!r}"
                    )
        for t, gate_tier in enumerate(self.approvals.tiers):
            for i, pid in enumerate(gate_tier.people):
                if pid not in people:
                    problems.append(
                        f"approvals.tiers[{t}].people[{i}]: {pid!r} is not on the roster"
                    )
            for i, sid in enumerate(gate_tier.schedules):
                if sid not in self.schedules:
                    problems.append(
                        f"approvals.tiers[{t}].schedules[{i}]: no schedule named {sid!r}"
                    )
        for i, api_token in enumerate(self.access.tokens):
            if api_token.person not in people:
                problems.append(
                    f"access.tokens[{i}].person: {api_token.person!r} is not on the roster"
                )
        for i, service in enumerate(self.services):
            if service.escalation_policy not in self.escalation_policies:
                problems.append(
                    f"services[{i}].escalation_policy: no policy named "
                    f"{service.escalation_policy!r}"
                )
        names = {s.name for s in self.services} | {self.incident.default_service}
        for i, window in enumerate(self.maintenance):
            if window.service not in names:
                problems.append(f"maintenance[{i}].service: no service named {window.service!r}")
        default = self.incident.default_service
        if default not in {s.name for s in self.services} and "default" not in (
            self.escalation_policies
        ):
            problems.append(
                "incident.default_service: needs a service of that name or an "
                "escalation policy named 'default'"
            )
        return problems


def alert_matches(
    match: AlertMatch, rule: str, targets: list[str], monitoring_service: str | None = None
) -> bool:
    def any_glob(patterns: list[str], values: list[str]) -> bool:
        return any(fnmatch.fnmatch(v.lower(), p.lower()) for p in patterns for v in values)

    groups = [part for t in targets if (part := _segment(t, "resourcegroups"))]
    types = [part for t in targets if (part := _resource_type(t))]
    checks = [
        (match.rules, [rule]),
        (match.resource_groups, groups),
        (match.resource_types, types),
        (match.resource_ids, targets),
        (match.monitoring_services, [monitoring_service or ""]),
    ]
    given = [(patterns, values) for patterns, values in checks if patterns]
    return bool(given) and all(any_glob(patterns, values) for patterns, values in given)


def _segment(resource_id: str, key: str) -> str | None:
    parts = resource_id.strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == key:
            return parts[i + 1]
    return None


def _resource_type(resource_id: str) -> str | None:
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return None
    i = len(lowered) - 1 - lowered[::-1].index("providers")
    tail = parts[i + 1 :]
    if len(tail) < 3:
        return None
    # namespace/type/name[/subtype/subname...] -> namespace/type[/subtype...]
    return "/".join([tail[0], *tail[1::2]])


class ConfigError(Exception):
    """A policy file that cannot be used, with one line per problem, each naming
    the path of the key at fault."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def parse_config(data: Any, source: str = "stanch.yaml") -> StanchConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of sections"])
    try:
        config = StanchConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(source, describe_validation_error(e)) from None
    problems = [
        *config.reference_problems(),
        *duplicate_problems(config),
        *secret_problems(config),
        *guest_problems(config.guests),
        *role_problems(config.access.emergency_roles),
        *chat_problems(
            config.chat, ((f"roster[{i}].slack", p.slack) for i, p in enumerate(config.roster))
        ),
        *communications_problems(
            config.communications,
            ((p.id, p.roles) for p in config.roster),
            {c.name for c in config.channels},
        ),
    ]
    if problems:
        raise ConfigError(source, problems)
    return config
