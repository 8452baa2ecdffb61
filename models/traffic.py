"""Traffic Manager as the failover runbook sees it: a profile and its
endpoints, the values a failover sets, and the order it writes them in.

Pure (no I/O, no clock), so the runbook plans its failover from a read it
made, the activity plans its writes from the read it makes, and both are
tested without a server (tests/models/test_traffic_plan.py).

Two facts of Traffic Manager shape the plan:
- every endpoint of a profile has a distinct priority (1..1000): swapping two
  priorities takes a third, free value for one of them first;
- a weight is 1..1000 (0 is refused), so a Weighted profile takes the primary
  out of rotation by disabling it, not by weighting it to nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from stanch.models.azure import ResourceId

PROFILE_TYPE = "Microsoft.Network/trafficManagerProfiles"
EndpointKind = Literal["azureEndpoints", "externalEndpoints", "nestedEndpoints"]
EndpointStatus = Literal["Enabled", "Disabled"]
# What Traffic Manager's probes say of an endpoint.
ONLINE = "Online"
KNOWN_BAD = ("Degraded", "Stopped")
PRIORITY_RANGE = range(1, 1001)
# Routing methods a failover knows how to move.
PRIORITY, WEIGHTED = "Priority", "Weighted"


def checked_profile_id(value: str) -> str:
    """The id, normalised; ValueError when it is no Traffic Manager profile's."""
    rid = ResourceId.parse(value)
    if not rid.is_type(PROFILE_TYPE):
        raise ValueError(f"{value!r} is not a Traffic Manager profile ({PROFILE_TYPE})")
    return rid.id


class ProfileRef(BaseModel):
    profile_id: str

    @field_validator("profile_id")
    @classmethod
    def _profile(cls, value: str) -> str:
        return checked_profile_id(value)


class TrafficEndpoint(BaseModel):
    name: str
    kind: EndpointKind
    target: str | None = None
    target_resource_id: str | None = None
    location: str | None = None
    endpoint_status: EndpointStatus = "Enabled"
    monitor_status: str | None = None  # Online, Degraded, CheckingEndpoint, Disabled, ...
    priority: int | None = None
    weight: int | None = None


class TrafficProfile(BaseModel):
    profile_id: str
    name: str
    routing_method: str
    profile_status: str = "Enabled"
    monitor_status: str | None = None
    fqdn: str | None = None
    endpoints: list[TrafficEndpoint]
    request_id: str | None = None

    def endpoint(self, name: str) -> TrafficEndpoint:
        """By name (case-insensitive, as ARM names are); ValueError naming
        the endpoints there are."""
        for endpoint in self.endpoints:
            if endpoint.name.lower() == name.lower():
                return endpoint
        have = ", ".join(e.name for e in self.endpoints) or "none"
        raise ValueError(f"profile {self.name} has no endpoint {name!r} (it has: {have})")

    def first_by_priority(self) -> TrafficEndpoint | None:
        """The enabled endpoint a Priority profile sends traffic to while it is healthy."""
        enabled = [e for e in self.endpoints if e.endpoint_status == "Enabled"]
        return min(enabled, key=lambda e: e.priority or 1000, default=None)

    def summary_line(self) -> str:
        shown = ", ".join(
            f"{e.name} ({e.endpoint_status.lower()}, {e.monitor_status or 'unknown'}"
            + (f", priority {e.priority}" if self.routing_method == PRIORITY else "")
            + (f", weight {e.weight}" if self.routing_method == WEIGHTED else "")
            + ")"
            for e in self.endpoints
        )
        return f"{self.name} routes by {self.routing_method}: {shown}"


class EndpointSetting(BaseModel):
    """What one endpoint should hold; None leaves a value as it is."""

    name: str
    kind: EndpointKind
    priority: int | None = Field(default=None, ge=1, le=1000)
    weight: int | None = Field(default=None, ge=1, le=1000)
    endpoint_status: EndpointStatus | None = None


class EndpointWrite(BaseModel):
    """One PATCH of one endpoint's one value: set-to-value, so writing it
    twice leaves what writing it once does."""

    name: str
    kind: EndpointKind
    field: Literal["priority", "weight", "endpointStatus"]
    value: int | str

    def describe(self) -> str:
        return f"{self.name}.{self.field}={self.value}"


class EndpointChange(BaseModel):
    """Bring the endpoints to `settings`. `previous` is what they held when
    the runbook read them before deciding: the undo's settings (a retry after
    a write got through would otherwise read the new values as the old)."""

    profile_id: str
    incident_id: str
    settings: list[EndpointSetting] = Field(min_length=1)
    previous: list[EndpointSetting] = Field(default_factory=list)

    @field_validator("profile_id")
    @classmethod
    def _profile(cls, value: str) -> str:
        return checked_profile_id(value)

    def undo(self) -> EndpointChange:
        """The change that takes this one back."""
        return self.model_copy(update={"settings": self.previous, "previous": self.settings})


class EndpointChangeResult(BaseModel):
    profile_id: str
    writes: list[EndpointWrite]  # what this attempt wrote; [] when all was in place
    settings: list[EndpointSetting]
    previous: list[EndpointSetting]
    request_ids: list[str] = Field(default_factory=list)

    def summary_line(self) -> str:
        if not self.writes:
            return "endpoints already as asked"
        return "wrote " + ", ".join(w.describe() for w in self.writes)


class ServingCheck(BaseModel):
    profile_id: str
    endpoint: str
    # Fetched as well when given: the endpoint serves only if it answers 2xx/3xx.
    probe_url: str | None = None

    @field_validator("profile_id")
    @classmethod
    def _profile(cls, value: str) -> str:
        return checked_profile_id(value)

    @field_validator("probe_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return checked_probe_url(value)


def checked_probe_url(value: str | None) -> str | None:
    if value is not None and not value.lower().startswith(("http://", "https://")):
        raise ValueError(f"{value!r}: a probe is an http:// or https:// URL")
    return value


class ServingStatus(BaseModel):
    endpoint: str
    monitor_status: str | None
    endpoint_status: str
    probe_status: int | None = None
    probe_error: str | None = None
    serving: bool

    def summary_line(self) -> str:
        probe = ""
        if self.probe_status is not None:
            probe = f", probe HTTP {self.probe_status}"
        elif self.probe_error:
            probe = f", probe failed: {self.probe_error}"
        verdict = "serving" if self.serving else "not serving"
        return f"{self.endpoint}: {self.monitor_status}{probe}: {verdict}"


# ---- the plan ----------------------------------------------------------------------


def failover_settings(
    profile: TrafficProfile, primary: str, secondary: str
) -> tuple[list[EndpointSetting], list[EndpointSetting]]:
    """What moves traffic from `primary` to `secondary`, and what those
    endpoints hold now (the undo). ([], []) when traffic is already there.
    ValueError when the profile cannot fail over this way."""
    first, second = profile.endpoint(primary), profile.endpoint(secondary)
    if first.name == second.name:
        raise ValueError(f"primary and secondary are the same endpoint ({first.name})")
    if profile.routing_method == PRIORITY:
        if first.priority is None or second.priority is None:
            raise ValueError(f"profile {profile.name}: an endpoint without a priority")
        moved = second.endpoint_status == "Enabled" and second.priority < first.priority
        if moved:
            return [], []
        targets = [
            EndpointSetting(
                name=second.name,
                kind=second.kind,
                priority=first.priority,
                endpoint_status="Enabled",
            ),
            EndpointSetting(name=first.name, kind=first.kind, priority=second.priority),
        ]
    elif profile.routing_method == WEIGHTED:
        moved = second.endpoint_status == "Enabled" and first.endpoint_status == "Disabled"
        if moved:
            return [], []
        targets = [
            EndpointSetting(name=second.name, kind=second.kind, endpoint_status="Enabled"),
            EndpointSetting(name=first.name, kind=first.kind, endpoint_status="Disabled"),
        ]
    else:
        raise ValueError(
            f"profile {profile.name} routes by {profile.routing_method}: a failover moves "
            "traffic by priority (Priority) or by taking the primary out (Weighted)"
        )
    return targets, [_held(profile.endpoint(t.name), t) for t in targets]


def _held(endpoint: TrafficEndpoint, like: EndpointSetting) -> EndpointSetting:
    """What `endpoint` holds of the values `like` sets."""
    return EndpointSetting(
        name=endpoint.name,
        kind=endpoint.kind,
        priority=endpoint.priority if like.priority is not None else None,
        weight=endpoint.weight if like.weight is not None else None,
        endpoint_status=endpoint.endpoint_status if like.endpoint_status is not None else None,
    )


def endpoint_writes(
    profile: TrafficProfile, settings: list[EndpointSetting]
) -> list[EndpointWrite]:
    """The writes that bring `profile` to `settings`, from what it holds now,
    in the order that keeps traffic going somewhere on purpose: endpoints
    enabled first, then priorities (the one that becomes first is written
    first, a holder of its value moved to a free one just before), weights,
    and endpoints disabled last. Nothing for a value already held."""
    current = {e.name.lower(): e for e in profile.endpoints}
    for setting in settings:
        profile.endpoint(setting.name)  # ValueError for an endpoint not there

    def wanted(field: str) -> list[tuple[EndpointSetting, int | str]]:
        found: list[tuple[EndpointSetting, int | str]] = []
        for s in settings:
            value = {"priority": s.priority, "weight": s.weight, "status": s.endpoint_status}[field]
            if value is not None:
                found.append((s, value))
        return found

    writes: list[EndpointWrite] = []
    for setting, status in wanted("status"):
        if status == "Enabled" and current[setting.name.lower()].endpoint_status != "Enabled":
            writes.append(_write(setting, "endpointStatus", "Enabled"))
    priorities = {e.name.lower(): e.priority for e in profile.endpoints}
    for setting, value in sorted(wanted("priority"), key=lambda pair: pair[1]):
        key = setting.name.lower()
        if priorities[key] == value:
            continue
        holder = next((n for n, p in priorities.items() if p == value and n != key), None)
        if holder is not None:
            parked = _free_priority(priorities)
            writes.append(_write(current[holder], "priority", parked))
            priorities[holder] = parked
        writes.append(_write(setting, "priority", value))
        priorities[key] = int(value)
    for setting, value in wanted("weight"):
        if current[setting.name.lower()].weight != value:
            writes.append(_write(setting, "weight", value))
    for setting, status in wanted("status"):
        if status == "Disabled" and current[setting.name.lower()].endpoint_status != "Disabled":
            writes.append(_write(setting, "endpointStatus", "Disabled"))
    return writes


def _write(
    endpoint: EndpointSetting | TrafficEndpoint,
    field: Literal["priority", "weight", "endpointStatus"],
    value: int | str,
) -> EndpointWrite:
    return EndpointWrite(name=endpoint.name, kind=endpoint.kind, field=field, value=value)


def _free_priority(held: dict[str, int | None]) -> int:
    """A priority no endpoint holds: just past the highest, else the highest free."""
    taken = {p for p in held.values() if p is not None}
    above = max(taken, default=0) + 1
    if above in PRIORITY_RANGE:
        return above
    return max(p for p in PRIORITY_RANGE if p not in taken)


def unmet(profile: TrafficProfile, settings: list[EndpointSetting]) -> list[str]:
    """The settings `profile` does not hold, each as `name.field=value`."""
    missing = []
    for s in settings:
        e = profile.endpoint(s.name)
        for field, want, have in (
            ("priority", s.priority, e.priority),
            ("weight", s.weight, e.weight),
            ("endpointStatus", s.endpoint_status, e.endpoint_status),
        ):
            if want is not None and want != have:
                missing.append(f"{e.name}.{field}={want} (holds {have})")
    return missing
