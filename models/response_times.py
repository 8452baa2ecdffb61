"""MTTA and MTTR per severity over a window: how fast incidents were
acknowledged and resolved, measured from the first alert, as OE:08 asks teams
to track. Pure: computed from incident states, wherever they came from."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from stanch.models.incident import IncidentState
from stanch.models.severity import Severity


class SeverityResponse(BaseModel):
    severity: Severity
    incidents: int
    acknowledged: int
    resolved: int
    mtta_seconds: float | None  # mean, over the acknowledged ones
    mttr_seconds: float | None  # mean, over the resolved ones


class ResponseTimes(BaseModel):
    since: datetime
    until: datetime
    severities: list[SeverityResponse]  # most severe first; only those seen


def response_times(states: list[IncidentState], since: datetime, until: datetime) -> ResponseTimes:
    by_severity: dict[Severity, list[IncidentState]] = {}
    for state in states:
        if since <= state.opened_at <= until:
            by_severity.setdefault(state.severity, []).append(state)
    rows = []
    for severity in sorted(by_severity, key=lambda s: s.rank):
        group = by_severity[severity]
        to_ack = [s.acknowledged_at - s.opened_at for s in group if s.acknowledged_at]
        to_resolve = [s.resolved_at - s.opened_at for s in group if s.resolved_at]
        rows.append(
            SeverityResponse(
                severity=severity,
                incidents=len(group),
                acknowledged=len(to_ack),
                resolved=len(to_resolve),
                mtta_seconds=_mean(to_ack),
                mttr_seconds=_mean(to_resolve),
            )
        )
    return ResponseTimes(since=since, until=until, severities=rows)


def _mean(values: list[timedelta]) -> float | None:
    if not values:
        return None
    return sum(v.total_seconds() for v in values) / len(values)
