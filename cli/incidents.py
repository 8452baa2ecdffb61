"""`stanch incidents | show | ack | resolve | role | note`: on-call from a terminal.

Reading goes straight to Temporal, the system of record, through the client
room (stanch.client.incidents). Acting goes through
the on-call API with the caller's credential (cli/credentials.py): the gateway
names the person from it, so nobody acts under a name they merely typed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from temporalio.client import Client

from stanch.cli.api_client import OnCallApi, incident_path
from stanch.cli.errors import UsageError
from stanch.client import incidents as reading
from stanch.client.incidents import IncidentDetail, IncidentSummary, listing_query
from stanch.models.duration import age, relative
from stanch.models.incident import IncidentStatus, Role, TimelineEntry, UpdateResult
from stanch.models.severity import Severity

LISTED_AT_MOST = 500


async def list_incidents(
    client: Client,
    status: IncidentStatus | None,
    severity: Severity | None,
    service: str | None,
    everything: bool,
) -> list[IncidentSummary]:
    """Open incidents unless `everything` or a status is asked for; at most
    LISTED_AT_MOST of them, page by page."""
    query = listing_query(
        status=status,
        severity=severity,
        service=service,
        running_only=not everything and status is None,
    )
    rows: list[IncidentSummary] = []
    token: str | None = None
    while len(rows) < LISTED_AT_MOST:
        page = await reading.list_incidents(
            client, query, page_size=LISTED_AT_MOST - len(rows), page_token=token
        )
        rows += page.incidents
        token = page.next_page_token
        if token is None:
            break
    return rows


def print_incidents(rows: list[IncidentSummary], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        print("no incidents")
        return
    print(f"{'INCIDENT':<22} {'SEV':<5} {'STATUS':<13} {'SERVICE':<14} {'AGE':>6}  TITLE")
    for r in rows:
        status = "STUCK" if r.stuck else r.status or "-"
        print(
            f"{r.incident_id:<22} {r.severity or '-':<5} {status:<13} "
            f"{(r.service or '-')[:14]:<14} {age(r.opened_at):>6}  {r.title or ''}"
        )


def print_incident(detail: IncidentDetail, as_json: bool) -> None:
    if as_json:
        print(detail.model_dump_json(indent=2))
        return
    s = detail.view.state
    print(f"incident {s.incident_id}  {s.severity}  {s.status.upper()}")
    stuck = detail.stuck
    if stuck is not None:
        # Said first: what follows is its last word, not its progress.
        print(f"  {stuck.summary}")
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
        outcome = view.outcome or (
            "stuck" if stuck is not None and stuck.workflow_id == view.workflow_id else "running"
        )
        print(f"  runbook:   {view.runbook} ({outcome}{', dry run' if view.dry_run else ''})")
        for step in view.steps:
            print(f"    - {step.name}: {step.status}")
        if view.pending and stuck is None:
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


def valid_status(value: str | None) -> IncidentStatus | None:
    if value is None:
        return None
    try:
        return IncidentStatus(value.lower())
    except ValueError:
        choices = ", ".join(s.value for s in IncidentStatus)
        raise UsageError(f"--status: {value!r} is not one of {choices}") from None


def valid_severity(value: str | None) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity.parse(value)
    except ValueError as e:
        raise UsageError(f"--severity: {e}") from None


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}Z ({relative(at)})"
