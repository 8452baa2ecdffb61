"""Related alerts grouped into one incident (issue 17 item 5).

A service's `correlate: {by: service | resource_group | tag:<name>, window: 15m}`
turns alerts that share the key within the window into parts of one incident.
The incident id is derived, not looked up: a hash of the service, the key's
value and the window the alert *fired* in. Two gateways given the same alert
compute the same id, signal-with-start on it is race-free, and a Resolved
alert (which carries its firedDateTime) reaches the incident its firing
opened, however late it comes.

The cost of a fixed grid: a storm that straddles a window boundary opens two
incidents, one per window. That is bounded (one extra page per window), where
a sliding window would need a lookup shared by every gateway.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stanch.models.alert import AlertEvent
from stanch.models.duration import Duration

# Incident ids of grouped incidents start with this; a fingerprint is hex only,
# so the two never collide and the workflow knows which one it runs.
GROUP_PREFIX = "grp-"
_BY = re.compile(r"^(service|resource_group|tag:[A-Za-z0-9_.-]{1,64})$")


class Correlation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = "service"
    window: Duration = timedelta(minutes=15)

    @field_validator("by")
    @classmethod
    def _known_key(cls, value: str) -> str:
        if not _BY.match(value):
            raise ValueError("must be service, resource_group or tag:<name>")
        return value

    @field_validator("window")
    @classmethod
    def _bounded_window(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=1):
            raise ValueError("must be between 1m and 1d")
        return value

    def key_value(self, alert: AlertEvent) -> str | None:
        """What the alert shares with its related alerts, or None when it has
        none (no resource group in its targets, no such tag): it then opens its
        own incident, as without correlation."""
        if self.by == "service":
            return "*"
        if self.by == "resource_group":
            groups = sorted({g for t in alert.targets if (g := _resource_group(t))})
            return ",".join(groups) or None
        # Resource tags are not in Azure's common alert schema; a tag reaches an
        # alert as a dimension (split by the tag in the rule), read here.
        name = self.by.removeprefix("tag:").lower()
        found = {k.lower(): v for k, v in alert.dimensions.items()}.get(name)
        return found.lower() if found else None


def group_id(
    service: str, correlation: Correlation, alert: AlertEvent, now: datetime
) -> str | None:
    """The grouped incident's id for `alert`, or None when it is not grouped."""
    value = correlation.key_value(alert)
    if value is None:
        return None
    fired = alert.fired_at or now
    if fired.tzinfo is None:
        fired = fired.replace(tzinfo=UTC)
    seconds = int(correlation.window.total_seconds())
    window_start = int(fired.timestamp()) // seconds * seconds
    material = f"{service}\n{correlation.by}\n{value}\n{window_start}"
    return GROUP_PREFIX + hashlib.sha256(material.encode()).hexdigest()[:20]


def is_grouped(incident_id: str) -> bool:
    return incident_id.startswith(GROUP_PREFIX)


class AlertPart(BaseModel):
    """One related alert of a grouped incident: one per fingerprint (rule and
    targets), firing or resolved on its own."""

    fingerprint: str
    rule: str
    targets: list[str] = Field(default_factory=list)
    alert_id: str
    firing: bool = True
    fired_at: datetime
    resolved_at: datetime | None = None


def _resource_group(resource_id: str) -> str | None:
    parts = resource_id.strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1].lower()
    return None
