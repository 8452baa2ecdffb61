"""The simulated estate, seeded from a YAML world file.

```yaml
subscriptions: [00000000-0000-0000-0000-000000000001]
resources:
  - id: /subscriptions/<sub>/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w
    properties: {customerId: <workspace guid>}   # the id its queries answer to
  - id: /subscriptions/<sub>/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1
    location: westeurope
    properties: {...}          # optional; VMs, NICs and NSGs get realistic defaults
    power_state: running       # VMs only
    health: Available          # Resource Health availability state
workspaces:                    # tables by workspace id (a workspace's customerId)
  <workspace guid>:
    tables:
      Heartbeat:
        columns: [{name: TimeGenerated, type: datetime}, {name: Computer, type: string}]
        rows: [["2026-01-01T00:00:00Z", "vm-web-1"]]
metrics:
  <resource id>:
    Percentage CPU: {unit: Percent, interval: PT1M, values: [12, 97, 98]}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedResource(_Strict):
    id: str
    location: str = "westeurope"
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    power_state: str | None = None
    sku: dict[str, Any] | None = None  # e.g. scale sets: {name, tier, capacity}
    health: str = "Available"
    health_summary: str | None = None


class Column(_Strict):
    name: str
    type: str = "string"


class Table(_Strict):
    columns: list[Column]
    rows: list[list[Any]] = Field(default_factory=list)


class Workspace(_Strict):
    tables: dict[str, Table] = Field(default_factory=dict)


class Series(_Strict):
    unit: str = "Count"
    interval: str = "PT1M"
    values: list[float | None]


class World(_Strict):
    subscriptions: list[str] = Field(default_factory=list)
    tenant_id: str = "00000000-0000-0000-0000-0000000000ee"  # what subscriptions report
    resources: list[SeedResource] = Field(default_factory=list)
    workspaces: dict[str, Workspace] = Field(default_factory=dict)
    metrics: dict[str, dict[str, Series]] = Field(default_factory=dict)
    # How long a VM power operation stays InProgress before it settles.
    operation_seconds: float = 0.5


def load_world(path: Path | str) -> World:
    return World.model_validate(yaml.safe_load(Path(path).read_text()) or {})
