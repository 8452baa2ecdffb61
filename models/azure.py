"""Inputs and results of the Azure activities, and ARM resource-id parsing.

One input model per activity so fields can be added without breaking running
workflows. Results carry the `x-ms-request-id` of the call that mattered, so the
audit trail can point at Azure's own logs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class ResourceId(BaseModel):
    """`/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/...]`."""

    id: str
    subscription: str
    resource_group: str
    namespace: str
    type: str  # `virtualMachines`, or `networkSecurityGroups/securityRules`
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> ResourceId:
        parts = [p for p in resource_id.strip().split("/") if p]
        low = [p.lower() for p in parts]
        if (
            len(parts) < 8
            or low[0] != "subscriptions"
            or low[2] != "resourcegroups"
            or (low[4] != "providers")
        ):
            raise ValueError(
                f"not an ARM resource id: {resource_id!r} (expected /subscriptions/<sub>/"
                "resourceGroups/<rg>/providers/<namespace>/<type>/<name>)"
            )
        tail = parts[5:]
        if len(tail) % 2 == 0:
            raise ValueError(f"not an ARM resource id: {resource_id!r} (type without a name)")
        return cls(
            id="/" + "/".join(parts),
            subscription=parts[1],
            resource_group=parts[3],
            namespace=tail[0],
            type="/".join(tail[1::2]),
            name=tail[-1],
        )

    @property
    def full_type(self) -> str:
        return f"{self.namespace}/{self.type}"

    def is_type(self, full_type: str) -> bool:
        return self.full_type.lower() == full_type.lower()


def _valid_resource_id(value: str) -> str:
    return ResourceId.parse(value).id


class ResourceRef(BaseModel):
    resource_id: str

    @field_validator("resource_id")
    @classmethod
    def _arm_id(cls, value: str) -> str:
        return _valid_resource_id(value)


class ResourceSnapshot(BaseModel):
    """A resource as ARM returned it: what evidence capture stores."""

    id: str
    name: str
    type: str
    location: str | None
    tags: dict[str, str]
    properties: dict[str, Any]
    api_version: str
    request_id: str | None


class TagChange(BaseModel):
    resource_id: str
    tags: dict[str, str] = Field(min_length=1)


class TagRemoval(BaseModel):
    resource_id: str
    names: list[str] = Field(min_length=1)


class TagsResult(BaseModel):
    tags: dict[str, str]
    changed: bool
    request_id: str | None

    def summary_line(self) -> str:
        return "tags applied" if self.changed else "tags already in place"


LockLevel = Literal["CanNotDelete", "ReadOnly"]


class LockRequest(BaseModel):
    scope: str  # a resource, resource group or subscription id
    name: str  # `stanch-<incident>`: the name makes a retry re-apply the same lock
    level: LockLevel = "CanNotDelete"
    notes: str | None = None


class LockRemoval(BaseModel):
    scope: str
    name: str


class LockResult(BaseModel):
    id: str
    level: LockLevel
    request_id: str | None

    def summary_line(self) -> str:
        return f"{self.level} lock {self.id.rsplit('/', 1)[-1]}"


class Removal(BaseModel):
    removed: bool  # False when there was nothing to remove (a retry, or never applied)
    request_id: str | None = None


class QuarantineRequest(BaseModel):
    resource_id: str  # a virtual machine or a network interface
    incident_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,40}$")


class IsolatedNic(BaseModel):
    nic_id: str
    quarantine_nsg_id: str  # `stanch-quarantine-<incident>`, deny-all both ways
    original_nsg_id: str | None  # what release puts back (None: the NIC had no NSG)


class QuarantineRecord(BaseModel):
    """Exactly what quarantine applied: the input of its undo."""

    resource_id: str
    incident_id: str
    nics: list[IsolatedNic]
    request_ids: list[str] = Field(default_factory=list)

    def summary_line(self) -> str:
        nics = ", ".join(n.nic_id.rsplit("/", 1)[-1] for n in self.nics) or "no NIC"
        return f"{nics} on a deny-all NSG"


class ScaleRequest(BaseModel):
    resource_id: str  # a virtual machine scale set
    capacity: int = Field(ge=0, le=1000)
    # The capacity the runbook read before deciding: what the undo returns to.
    # Read again inside a retried activity it could already be the new one.
    previous: int | None = Field(default=None, ge=0, le=1000)


class ScaleResult(BaseModel):
    resource_id: str
    previous: int
    capacity: int
    request_id: str | None = None

    def summary_line(self) -> str:
        return f"capacity {self.previous} -> {self.capacity}"


class IsolationCheck(BaseModel):
    isolated: bool
    problems: list[str] = Field(default_factory=list)

    def summary_line(self) -> str:
        return "isolated" if self.isolated else "; ".join(self.problems)


class VmRef(BaseModel):
    resource_id: str

    @field_validator("resource_id")
    @classmethod
    def _vm_id(cls, value: str) -> str:
        rid = ResourceId.parse(value)
        if not rid.is_type("Microsoft.Compute/virtualMachines"):
            raise ValueError(f"not a virtual machine: {value!r}")
        return rid.id


class PowerState(BaseModel):
    resource_id: str
    power_state: str  # running, deallocated, stopped, starting, ...
    provisioning_state: str | None = None

    @property
    def operation_under_way(self) -> bool:
        """Azure is still carrying out a power action (or another update)."""
        moving = self.power_state in {"starting", "stopping", "deallocating"}
        return moving or (self.provisioning_state or "").lower() == "updating"

    def summary_line(self) -> str:
        return self.power_state


class Availability(BaseModel):
    resource_id: str
    state: str  # Available, Unavailable, Degraded, Unknown
    summary: str | None = None
    reason_type: str | None = None
    occurred_at: datetime | None = None

    def summary_line(self) -> str:
        return f"{self.state}: {self.summary}" if self.summary else self.state


class KqlQuery(BaseModel):
    query: str = Field(min_length=1)
    workspace_id: str | None = None
    resource_id: str | None = None  # a resource-centric query instead of a workspace
    timespan: timedelta | None = timedelta(hours=1)


class QueryColumn(BaseModel):
    name: str
    type: str


class QueryTable(BaseModel):
    name: str
    columns: list[QueryColumn]
    rows: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=False)) for row in self.rows]


class QueryResult(BaseModel):
    tables: list[QueryTable]
    partial: bool = False
    partial_error: str | None = None

    def summary_line(self) -> str:
        rows = sum(len(t.rows) for t in self.tables)
        return f"{rows} row(s)" + (" (partial)" if self.partial else "")


class MetricsQuery(BaseModel):
    resource_ids: list[str] = Field(min_length=1)
    namespace: str  # e.g. Microsoft.Compute/virtualMachines
    names: list[str] = Field(min_length=1)
    timespan: timedelta = timedelta(minutes=30)
    interval: timedelta = timedelta(minutes=1)
    aggregation: str = "Average"
    region: str | None = None  # the resources' region; selects the regional endpoint


class MetricPoint(BaseModel):
    at: datetime
    value: float | None


class MetricSeries(BaseModel):
    resource_id: str
    name: str
    unit: str | None
    points: list[MetricPoint]

    def latest(self) -> float | None:
        return next((p.value for p in reversed(self.points) if p.value is not None), None)


class MetricsResult(BaseModel):
    series: list[MetricSeries]

    def summary_line(self) -> str:
        return ", ".join(f"{s.name} {s.latest()} {s.unit or ''}".strip() for s in self.series)
