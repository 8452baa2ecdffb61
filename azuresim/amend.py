"""`POST /_admin/world`: change the world while it runs — a resource's health
or power state, a metric series, a table's rows. The body is validated whole
before anything changes, so a bad one is a 400 naming the field and changes
nothing."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from stanch.azuresim.state import SimState
from stanch.azuresim.world import Series, Table, Workspace


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourceChange(_Strict):
    id: str
    health: str | None = None
    health_summary: str | None = None
    power_state: str | None = None


class WorkspaceChange(_Strict):
    tables: dict[str, Table] = Field(default_factory=dict)


class Amendment(_Strict):
    resources: list[ResourceChange] = Field(default_factory=list)
    metrics: dict[str, dict[str, Series]] = Field(default_factory=dict)
    workspaces: dict[str, WorkspaceChange] = Field(default_factory=dict)


def amend(state: SimState, amendment: Amendment) -> None:
    """Apply it (the caller holds the state lock). Every resource is looked up
    first: an unknown id refuses the whole amendment (404 → 400 to the caller)."""
    targets = [(state.get(change.id), change) for change in amendment.resources]
    for resource, change in targets:
        if "health" in change.model_fields_set and change.health is not None:
            resource.health = change.health
            resource.health_summary = change.health_summary
            resource.health_changed = time.time()
        if change.power_state is not None:
            resource.power_state, resource.pending = change.power_state, None
    for rid, metrics in amendment.metrics.items():
        state.world.metrics.setdefault(rid, {}).update(metrics)
    for wid, workspace in amendment.workspaces.items():
        state.world.workspaces.setdefault(wid, Workspace()).tables.update(workspace.tables)
