"""`stanch incidents | show | ack | resolve | role | note`: on-call from a terminal.

Reading goes straight to Temporal (the system of record). Acting goes through
the on-call API with the caller's credential (cli/credentials.py): the gateway
names the person from it, so nobody acts under a name they merely typed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from stanch.cli.api_client import OnCallApi, incident_path
from stanch.cli.errors import UsageError
from stanch.models.duration import age
from stanch.models.incident import (
    IncidentStatus,
    IncidentView,
    Role,
    TimelineEntry,
    UpdateResult,
)
from stanch.workflows.incident import IncidentWorkflow, workflow_id_for
from stanch.workflows.search_attributes import (
    INCIDENT_SERVICE,
    INCIDENT_SEVERITY,
    INCIDENT_STATUS,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode


def workflow_id(incident: str) -> str:
    incident = incident.strip()
    return incident if incident.startswith("incident-") else workflow_id_for(incident)


class IncidentRow(BaseModel):
    incident_id: str
    workflow_id: str
    status: str | None
    severity: str | None
    service: str | None
    title: str | None
    opened_at: datetime | None
    running: bool


async def list_incidents(
    client: Client, status: str | None, severity: str | None, service: str | None, everything: bool
) -> list[IncidentRow]:
    clauses = ["WorkflowType = 'IncidentWorkflow'"]
    if not everything and status is None:
        clauses.append("ExecutionStatus = 'Running'")
    for key, value in (
        (INCIDENT_STATUS, status),
        (INCIDENT_SEVERITY, severity),
        (INCIDENT_SERVICE, service),
    ):
        if value is not None:
            clauses.append(f"{key.name} = '{_quote(value)}'")
    rows = []
    async for execution in client.list_workflows(" AND ".join(clauses), limit=500):
        attrs = execution.typed_search_attributes
        memo = await execution.memo()
        rows.append(
            IncidentRow(
                incident_id=execution.id.removeprefix("incident-"),
                workflow_id=execution.id,
                status=attrs.get(INCIDENT_STATUS),
                severity=attrs.get(INCIDENT_SEVERITY),
                service=attrs.get(INCIDENT_SERVICE),
                title=memo.get("title"),
                opened_at=execution.start_time,
                running=execution.close_time is None,
            )
        )
    return rows


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def print_incidents(rows: list[IncidentRow], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        print("no incidents")
        return
    print(f"{'INCIDENT':<22} {'SEV':<5} {'STATUS':<13} {'SERVICE':<14} {'AGE':>6}  TITLE")
    for r in rows:
        print(
            f"{r.incident_id:<22} {r.severity or '-':<5} {r.status or '-':<13} "
            f"{(r.service or '-')[:14]:<14} {age(r.opened_at):>6}  {r.title or ''}"
        )


class IncidentDetail(BaseModel):
    view: IncidentView
    timeline: list[TimelineEntry]


async def fetch_incident(client: Client, incident: str) -> IncidentDetail:
    handle = client.get_workflow_handle_for(IncidentWorkflow.run, workflow_id(incident))
    try:
        view = await handle.query(IncidentWorkflow.state)
        timeline = await handle.query(IncidentWorkflow.timeline)
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            raise UsageError(f"no incident {incident!r}") from None
        raise
    return IncidentDetail(view=view, timeline=timeline)


def print_incident(detail: IncidentDetail, as_json: bool) -> None:
    if as_json:
        print(detail.model_dump_json(indent=2))
        return
    s = detail.view.state
    print(f"incident {s.incident_id}  {s.severity}  {s.status.upper()}")
    print(f"  title:     {s.title}")
    print(f"  service:   {s.service or '(loading)'}")
    for resource in s.resources:
        print(f"  resource:  {resource}")
    print(f"  opened:    {_when(s.opened_at)}")
    if s.acknowledged_at:
        print(f"  acked:     {_when(s.acknowledged_at)} by {s.acknowledged_by}")
    if s.resolved_at:
        print(f"  resolved:  {_when(s.resolved_at)} by {s.resolved_by}")
    if s.closed_at:
        print(f"  closed:    {_when(s.closed_at)}")
    print(f"  alerts:    {s.alert_count}    pages sent: {s.escalation.pages_sent}")
    if s.escalation.active and s.escalation.next_page_at:
        print(
            f"  next page: tier {s.escalation.next_tier + 1} at {_when(s.escalation.next_page_at)}"
        )
    for role, person in s.roles.items():
        print(f"  {role.replace('_', ' ')}: {person}")
    for view in (s.runbook, s.release):
        if view is None:
            continue
        outcome = view.outcome or "running"
        print(f"  runbook:   {view.runbook} ({outcome}{', dry run' if view.dry_run else ''})")
        for step in view.steps:
            print(f"    - {step.name}: {step.status}")
        if view.pending:
            p = view.pending
            print(
                f"  APPROVAL NEEDED: {p.step!r} ({p.risk} risk) from {p.required} of "
                f"{', '.join(p.eligible)}; so far {', '.join(p.approvals) or 'none'}; "
                f"denied at {p.deadline:%H:%M:%S}Z\n"
                f"    stanch approve {s.incident_id} '{p.step}'  (with your credential)"
            )
    print(f"  workflow:  {s.workflow_id}")
    print("timeline:")
    print_timeline(detail.timeline)


def print_timeline(timeline: list[TimelineEntry]) -> None:
    for entry in timeline:
        actor = f"  [{entry.actor}]" if entry.actor else ""
        print(f"  {entry.at:%Y-%m-%d %H:%M:%S}Z  {entry.kind:<20} {entry.summary}{actor}")


Answer = TypeVar("Answer", bound=BaseModel)


# What each people's command asks of the on-call API: its path under the
# incident, and the body. Checked here first so that a typo costs no round trip.


def ack_call(note: str | None) -> tuple[str, dict[str, Any]]:
    return "ack", {"note": note}


def resolve_call(note: str | None) -> tuple[str, dict[str, Any]]:
    return "resolve", {"note": note}


def role_call(role: str, assignee: str) -> tuple[str, dict[str, Any]]:
    try:
        parsed = Role(role.replace("-", "_"))
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise UsageError(f"role: {role!r} is not one of {choices}") from None
    return "roles", {"role": parsed.value, "assignee": assignee}


def note_call(text: str) -> tuple[str, dict[str, Any]]:
    if not text.strip():
        raise UsageError("note: text is empty")
    return "notes", {"text": text}


async def act(api: OnCallApi, incident: str, call: tuple[str, dict[str, Any]]) -> UpdateResult:
    """One action on an incident; the API's refusal is the user's answer."""
    action, body = call
    return UpdateResult.model_validate(await api.post(incident_path(incident, action), body))


def valid_status(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(IncidentStatus(value.lower()))
    except ValueError:
        choices = ", ".join(s.value for s in IncidentStatus)
        raise UsageError(f"--status: {value!r} is not one of {choices}") from None


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}Z ({age(at)} ago)"
