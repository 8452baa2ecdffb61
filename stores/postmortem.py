"""Blameless postmortem drafts, written from what the incident recorded.

The draft states facts (times, who did what, what automation changed and the
Azure request ids) and leaves judgement to people: what went well or poorly is
a placeholder; action items are suggestions, classed as OE:08 asks (response
plan, observability, workload design), for the review to keep or strike.

The renderer is pure (facts in, Markdown out) and could pass for a model; it
lives with the folder the drafts are kept in because it is the drafts' format,
which the worker writes, the dashboard shows and the CLI prints, while models/
holds the types everyone exchanges (models/postmortem.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from stanch.models.incident import IncidentState, TimelineEntry
from stanch.models.runbook import RunbookOutcome


class PostmortemFolder:
    """Where drafts are kept: one Markdown file per incident, rewritten from
    the same facts (so writing one again is harmless)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, incident_id: str, markdown: str) -> str:
        """Keeps the draft; returns where it is, as a file URI."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{incident_id}.md"
        path.write_text(markdown)
        return path.resolve().as_uri()


def _span(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "n/a"
    seconds = int((end - start).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        (f"{hours}h " if hours else "")
        + f"{minutes}m"
        + (f" {secs}s" if secs and not hours else "")
    )


def _first(timeline: list[TimelineEntry], *kinds: str) -> datetime | None:
    return next((e.at for e in timeline if e.kind in kinds), None)


def action_items(state: IncidentState, timeline: list[TimelineEntry]) -> list[tuple[str, str]]:
    """(class, suggestion) pairs drawn from what happened."""
    items: list[tuple[str, str]] = []
    escalations = [e for e in timeline if e.kind == "escalated"]
    if escalations:
        items.append(
            (
                "response plan",
                f"Tier 1 did not acknowledge; paging escalated "
                f"{len(escalations)} time(s). Check the rotation, its contact channels "
                "and its timeouts.",
            )
        )
    if any(e.kind == "escalation_exhausted" for e in timeline):
        items.append(
            (
                "response plan",
                "Nobody acknowledged after every tier: add a tier "
                "or a broadcast to the escalation policy.",
            )
        )
    if any(e.kind == "page_failed" for e in timeline):
        items.append(("response plan", "A page failed to deliver: test the notification channels."))
    if state.alert_count > 1:
        items.append(
            (
                "observability",
                f"The alert fired {state.alert_count} times for one "
                "incident: review its threshold, window and auto-resolution.",
            )
        )
    if state.monitoring_service == "stanch detector":
        items.append(
            (
                "observability",
                "Detected by a stanch detector, not an Azure alert "
                "rule: consider an alert rule on the same signal.",
            )
        )
    result = state.runbook_result
    if result is not None and result.outcome in (
        RunbookOutcome.CONTAINED,
        RunbookOutcome.MITIGATED,
    ):
        verb = "contain" if result.outcome is RunbookOutcome.CONTAINED else "mitigate"
        items.append(
            (
                "workload design",
                f"Automation ({result.runbook}) had to "
                f"{verb} {state.title}: find the root "
                "cause, and what would let the workload tolerate this failure "
                "(redundancy, health probes, graceful degradation).",
            )
        )
    elif result is not None:
        items.append(
            (
                "response plan",
                f"Automation ended {result.outcome.value}: review "
                f"the {result.runbook} runbook and its approval policy.",
            )
        )
    if any(e.kind == "reopened" for e in timeline):
        items.append(
            (
                "observability",
                "The alert flapped (reopened after resolution): "
                "review the alert's resolution criteria.",
            )
        )
    items.append(("workload design", "Root cause: to be written by the review."))
    return items


def render_postmortem(state: IncidentState, timeline: list[TimelineEntry]) -> str:
    fired = _first(timeline, "alert_fired") or state.opened_at
    contained = _first(timeline, "contained") or next(
        (
            s.ended_at
            for s in (state.runbook_result.steps if state.runbook_result else [])
            if s.name == "isolate network" and s.ended_at
        ),
        None,
    )
    if state.status.order >= 2 and contained is None:
        contained = _first(timeline, "mitigated")
    resolved = state.resolved_at
    lines = [
        f"# Postmortem (draft): {state.title}",
        "",
        "_Blameless: this describes what the system and the people in it did and knew, "
        "not who is at fault._",
        "",
        "## Summary",
        "",
        f"- **Incident** `{state.incident_id}` ({state.severity}), service "
        f"`{state.service or 'unknown'}`, status **{state.status}**",
        f"- **Alert rule** {state.alert_rule}"
        + (f" via {state.monitoring_service}" if state.monitoring_service else ""),
        "- **Resources** " + ", ".join(f"`{r}`" for r in state.resources),
        f"- **Alerts** {state.alert_count}; **pages sent** {state.escalation.pages_sent}",
        "",
        "## Impact window",
        "",
        f"From {fired:%Y-%m-%d %H:%M:%S}Z (first alert) to "
        + (
            f"{resolved:%Y-%m-%d %H:%M:%S}Z (resolved), {_span(fired, resolved)}."
            if resolved
            else "(not resolved when this draft was written)."
        ),
        "",
        "## Response times",
        "",
        "| milestone | at (UTC) | after the first alert |",
        "|---|---|---|",
    ]
    for name, at in (
        ("detected (incident opened)", state.opened_at),
        ("acknowledged", state.acknowledged_at),
        ("contained", contained),
        ("resolved", resolved),
        ("closed", state.closed_at),
    ):
        when = f"{at:%H:%M:%S}" if at else "n/a"
        lines.append(f"| {name} | {when} | {_span(fired, at)} |")
    roles = ", ".join(f"{r.replace('_', ' ')}: {p}" for r, p in state.roles.items())
    if roles:
        lines += ["", f"Roles: {roles}."]
    lines += ["", "## Timeline", "", "| at (UTC) | who | what |", "|---|---|---|"]
    for entry in timeline:
        text = entry.summary.replace("|", "\\|")
        lines.append(f"| {entry.at:%H:%M:%S} | {entry.actor or ''} | {text} |")
    lines += ["", "## Actions taken by automation", ""]
    result = state.runbook_result
    if result is None:
        lines.append("None: no runbook ran.")
    else:
        lines.append(f"Runbook `{result.runbook}` ended **{result.outcome}**: {result.summary}")
        lines.append("")
        for step in result.steps:
            detail = f" ({step.detail})" if step.detail else ""
            lines.append(f"- {step.name}: {step.status}{detail}")
        for evidence in result.evidence:
            lines.append(
                f"- evidence `{evidence.name}` sha256 `{evidence.sha256}` at {evidence.location}"
            )
        if result.applied:
            lines.append("")
            lines.append(
                "Still in place (undo with `stanch release`): "
                + ", ".join(u.step for u in result.applied)
                + "."
            )
        lines.append("")
        lines.append(
            "Every step, with Azure's request id, is in the audit trail: "
            f"`stanch audit export` (incident `{state.incident_id}`)."
        )
    lines += [
        "",
        "## What went well",
        "",
        "- _to be written by the review_",
        "",
        "## What went poorly",
        "",
        "- _to be written by the review_",
        "",
        "## Action items (suggested)",
        "",
        "| class | item | owner |",
        "|---|---|---|",
    ]
    for kind, item in action_items(state, timeline):
        lines.append(f"| {kind} | {item} | _tbd_ |")
    return "\n".join(lines) + "\n"
