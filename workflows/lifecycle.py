"""The incident's decisions, with no Temporal in them.

triggered -> acknowledged -> contained -> mitigated -> resolved -> closed

Every transition here takes the state and the workflow's clock (`now`), edits
the state in place and returns what the workflow must do about it, in order:
a line on the timeline (`Note`), the listing's search attributes brought up to
date (`Publish`), the run loop woken (`Wake`), a response time measured
(`Measure`). workflows/incident.py applies them: it holds the handlers, the
timers, the activities and the child workflows, and nothing it decides is
decided there. The order of the effects is part of the contract: `Publish`
becomes a command in the workflow's history, so a recorded incident replays
only if a transition publishes exactly where it did.

Deterministic and free of I/O, so the workflow can call it from any handler
and tests/workflows/test_lifecycle.py runs it in microseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from stanch.models.alert import AlertEvent, MonitorCondition
from stanch.models.config import AfterLastTier, EscalationPolicy, Tier
from stanch.models.duration import format_duration
from stanch.models.incident import (
    Escalation,
    IncidentState,
    ResponsePlan,
    Role,
    TimelineEntry,
)
from stanch.models.messages import RELEASE_RUNBOOK
from stanch.models.runbook import RunbookEvent, RunbookOutcome
from stanch.models.severity import DEFAULT_SEVERITY, Severity
from stanch.models.status import IncidentStatus

# Who the timeline says did it, when no person did.
SYSTEM_ACTOR = "stanch"
AZURE_MONITOR = "azure-monitor"
# Azure retries a webhook within minutes; remembering the last few hundred
# alert instances is enough to drop its duplicates without unbounded state.
SEEN_ALERTS_KEPT = 500
SEEN_KEY_CHARS = 128  # longer dedup keys are remembered by their SHA-256
TARGETS_NAMED = 5  # an alert's timeline line names this many targets, then counts
ALERT_REPEATED = "alert_repeated"
# What a person may set by hand (an ack and a resolve have their own requests).
SETTABLE_BY_HAND = (IncidentStatus.CONTAINED, IncidentStatus.MITIGATED)


# ---- what the workflow does about a transition ------------------------------


@dataclass(frozen=True)
class Note:
    """A line on the timeline."""

    kind: str
    summary: str
    actor: str | None


@dataclass(frozen=True)
class AlertRepeated:
    """A repeat of the alert: counted on the last line when that line counts
    repeats already, else a new `Note`."""

    at: datetime


@dataclass(frozen=True)
class Publish:
    """The listing's search attributes must show the incident as it stood
    here. A snapshot, not "now": a transition that publishes twice (a raised
    severity, then a reopen) publishes twice, as recorded incidents did."""

    status: IncidentStatus
    severity: Severity

    @classmethod
    def of(cls, state: IncidentState) -> Publish:
        return cls(state.status, state.severity)


@dataclass(frozen=True)
class Wake:
    """The run loop must look at its deadlines again."""


@dataclass(frozen=True)
class Measure:
    """A response time, recorded as a histogram by severity."""

    metric: str
    description: str
    elapsed: timedelta
    severity: Severity


Effect = Note | AlertRepeated | Publish | Wake | Measure

TIME_TO_ACKNOWLEDGE = ("stanch_time_to_acknowledge", "MTTA: first alert to acknowledgement")
TIME_TO_RESOLVE = ("stanch_time_to_resolve", "MTTR: first alert to resolution")


def display_name(plan: ResponsePlan | None, person: str) -> str:
    return plan.display_name(person) if plan else person


def _suffix(text: str | None) -> str:
    return f": {text}" if text else ""


# ---- opening ----------------------------------------------------------------


def opened(incident_id: str, workflow_id: str, alert: AlertEvent, now: datetime) -> IncidentState:
    """A new incident for its first alert; paging is due at once."""
    state = IncidentState(
        incident_id=incident_id,
        workflow_id=workflow_id,
        title=alert.rule,
        severity=alert.severity or DEFAULT_SEVERITY,
        alert_rule=alert.rule,
        alert_rule_id=alert.rule_id,
        resources=alert.targets,
        opened_at=now,
        monitoring_service=alert.monitoring_service,
        dimensions=alert.dimensions,
    )
    state.escalation.next_page_at = now
    return state


def opening_note(alert: AlertEvent) -> Note:
    return Note("opened", f"Incident opened for {alert.rule}", SYSTEM_ACTOR)


def plan_loaded(state: IncidentState, plan: ResponsePlan, now: datetime) -> list[Effect]:
    state.service = plan.service
    esc = state.escalation
    if esc.active and esc.next_tier == 0 and esc.round == 0:
        esc.next_page_at = now  # the escalation clock starts with tier 1's page
    effects: list[Effect] = [
        Note(
            "plan_loaded",
            f"Service {plan.service}, escalation policy {plan.policy_name}",
            SYSTEM_ACTOR,
        )
    ]
    if plan.warning:
        effects.append(Note("policy_invalid", plan.warning, SYSTEM_ACTOR))
    effects.append(Publish.of(state))
    return effects


# ---- deadlines ----------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    at: datetime
    summary: str  # the timer's summary, shown in the Temporal UI
    closes: bool  # True: close the incident; False: page the next tier


def next_deadline(state: IncidentState, plan: ResponsePlan | None) -> Deadline | None:
    """What the run loop waits for next: the end of the reopen window of a
    resolved incident, else the next page while escalation is active."""
    if plan is None:
        return None
    esc = state.escalation
    if state.status is IncidentStatus.RESOLVED:
        assert state.resolved_at is not None
        return Deadline(state.resolved_at + plan.reopen_window, "close after reopen window", True)
    if esc.active and esc.next_page_at is not None:
        return Deadline(esc.next_page_at, f"page tier {esc.next_tier + 1}", False)
    return None


# ---- escalation -------------------------------------------------------------


@dataclass(frozen=True)
class PageTier:
    tier: Tier
    number: int  # 1-based, as people count tiers
    reason: str


@dataclass(frozen=True)
class StartOver:
    """Every tier was paged: the policy repeats from tier 1, now."""


@dataclass(frozen=True)
class Broadcast:
    reason: str


@dataclass(frozen=True)
class Exhausted:
    note: Note


EscalationStep = PageTier | StartOver | Broadcast | Exhausted


def escalate(esc: Escalation, policy: EscalationPolicy, now: datetime) -> EscalationStep:
    """The escalation step due at `now`, with `esc` moved past it."""
    if esc.next_tier < len(policy.tiers):
        tier = policy.tiers[esc.next_tier]
        if esc.next_tier == 0 and esc.round == 0:
            reason = "incident opened"
        elif esc.next_tier == 0:
            reason = f"nobody acknowledged; round {esc.round + 1} of the policy"
        else:
            previous = policy.tiers[esc.next_tier - 1]
            reason = (
                f"tier {esc.next_tier} did not acknowledge within "
                f"{format_duration(previous.timeout)}"
            )
        number = esc.next_tier + 1
        esc.next_tier += 1
        # From the deadline, not from `now`: timer latency must not add up
        # across tiers.
        esc.next_page_at = (esc.next_page_at or now) + tier.timeout
        return PageTier(tier, number, reason)
    if policy.after_last_tier is AfterLastTier.REPEAT and esc.round < policy.repeat:
        esc.round += 1
        esc.next_tier = 0
        esc.next_page_at = now
        return StartOver()
    if policy.after_last_tier is AfterLastTier.BROADCAST:
        esc.active = False
        return Broadcast("no tier acknowledged: broadcast")
    esc.active = False
    esc.next_page_at = None
    return Exhausted(
        Note(
            "escalation_exhausted",
            "Nobody acknowledged after every tier of the policy; paging stopped",
            SYSTEM_ACTOR,
        )
    )


def paged_note(tier_number: int, round_: int, recipients: str, reason: str) -> Note:
    """The timeline's line for a page; tier 0 is the broadcast."""
    who = paged_who(tier_number)
    kind = "paged" if tier_number <= 1 and round_ == 0 else "escalated"
    return Note(kind, f"Paging {who}: {recipients} ({reason})", SYSTEM_ACTOR)


def paged_who(tier_number: int) -> str:
    return f"tier {tier_number}" if tier_number else "everyone"


def _stop_paging(state: IncidentState) -> Wake:
    state.escalation.active = False
    state.escalation.next_page_at = None
    return Wake()


# ---- people -------------------------------------------------------------------


def acknowledge(
    state: IncidentState, plan: ResponsePlan | None, now: datetime, by: str, note: str | None
) -> list[Effect] | None:
    """Stops paging; None when there was nothing to acknowledge (a retry)."""
    if state.status is not IncidentStatus.TRIGGERED:
        return None
    state.status = IncidentStatus.ACKNOWLEDGED
    state.acknowledged_at = now
    state.acknowledged_by = by
    return [
        Measure(*TIME_TO_ACKNOWLEDGE, now - state.opened_at, state.severity),
        _stop_paging(state),
        Note(
            "acknowledged",
            f"Acknowledged by {display_name(plan, by)}; paging stopped{_suffix(note)}",
            by,
        ),
        Publish.of(state),
    ]


def acknowledge_refusal(state: IncidentState) -> str | None:
    if not state.status.is_open:
        return f"incident is already {state.status}: nothing to acknowledge"
    return None


def resolve(
    state: IncidentState, plan: ResponsePlan | None, now: datetime, by: str, note: str | None
) -> list[Effect] | None:
    """A person resolves the incident; None when it was not open (a retry)."""
    if not state.status.is_open:
        return None
    line = Note("resolved", f"Resolved by {display_name(plan, by)}{_suffix(note)}", by)
    return [line, *_resolved(state, now, by)]


def _resolved(state: IncidentState, now: datetime, by: str) -> list[Effect]:
    state.status = IncidentStatus.RESOLVED
    state.resolved_at = now
    state.resolved_by = by
    return [
        Measure(*TIME_TO_RESOLVE, now - state.opened_at, state.severity),
        _stop_paging(state),
        Publish.of(state),
    ]


def assign_role(
    state: IncidentState, plan: ResponsePlan | None, role: Role, assignee: str, by: str
) -> list[Effect] | None:
    """None when `assignee` holds `role` already."""
    if state.roles.get(role) == assignee:
        return None
    state.roles[role] = assignee
    return [
        Note(
            "role_assigned",
            f"{display_name(plan, assignee)} is {role.replace('_', ' ')} "
            f"(assigned by {display_name(plan, by)})",
            by,
        )
    ]


def add_note(text: str, by: str) -> list[Effect]:
    return [Note("note", text, by)]


def change_status(
    state: IncidentState,
    plan: ResponsePlan | None,
    now: datetime,
    status: IncidentStatus,
    by: str,
    note: str | None,
) -> list[Effect]:
    """Progress a person made by hand; an incident still triggered is
    acknowledged by the same stroke."""
    effects: list[Effect] = acknowledge(state, plan, now, by, None) or []
    state.status = status
    effects += [
        Note(str(status), f"Marked {status} by {display_name(plan, by)}{_suffix(note)}", by),
        Publish.of(state),
    ]
    return effects


def status_change_refusal(state: IncidentState, wanted: IncidentStatus) -> str | None:
    if wanted not in SETTABLE_BY_HAND:
        return "status: only contained or mitigated can be set this way"
    if not state.status.is_open:
        return f"incident is already {state.status}"
    if wanted.order <= state.status.order:
        return f"incident is already {state.status}; status only moves forward"
    return None


def release_refusal(state: IncidentState) -> str | None:
    result = state.runbook_result
    if result is None or not result.applied:
        return "nothing to release: no runbook change is in place"
    if state.release is not None and state.release.outcome is None:
        return "a release is already waiting or running"
    return None


def release_requested(plan: ResponsePlan | None, by: str, reason: str | None) -> list[Effect]:
    return [
        Note(
            "release_requested",
            f"{display_name(plan, by)} asked to release what automation applied{_suffix(reason)}",
            by,
        )
    ]


# ---- alerts -------------------------------------------------------------------


class SeenAlerts:
    """The dedup memory: the most recent alert instances (by their dedup
    key), oldest first. Edits `keys` in place: continue-as-new carries it."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self._set = set(keys)

    def first_time(self, key: str) -> bool:
        """Remembers `key`; False when it was seen already (a webhook retry,
        an at-least-once signal)."""
        if key in self._set:
            return False
        self.keys.append(key)
        self._set.add(key)
        if len(self.keys) > SEEN_ALERTS_KEPT:
            self._set.discard(self.keys.pop(0))
        return True


REPEATED = Note(ALERT_REPEATED, "Alert repeated", AZURE_MONITOR)


def counted_as_repeat(timeline: list[TimelineEntry], at: datetime) -> bool:
    """Counts a repeat on the timeline's last line when that line counts
    repeats already (a flapping alert is one line, not thousands); False when
    a new line is needed."""
    last = timeline[-1] if timeline else None
    if last is None or last.kind != ALERT_REPEATED:
        return False
    last.count += 1
    last.summary = f"Alert repeated {last.count} times (latest {at:%H:%M:%S}Z)"
    return True


def is_long_key(key: str) -> bool:
    return len(key) > SEEN_KEY_CHARS


def hashed_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def alert_arrived(state: IncidentState, alert: AlertEvent, now: datetime) -> list[Effect]:
    """A new (not duplicate) alert: a resolution resolves an open incident; a
    firing counts, may raise the severity, and reopens a resolved incident."""
    effects: list[Effect] = [Wake()]
    if alert.condition is MonitorCondition.RESOLVED:
        if state.status.is_open:
            effects.append(
                Note("alert_resolved", f"Azure Monitor resolved {alert.rule}", AZURE_MONITOR)
            )
            effects += _resolved(state, now, AZURE_MONITOR)
        return effects
    state.alert_count += 1
    state.last_alert_at = now
    if state.alert_count == 1:
        effects.append(Note("alert_fired", describe_alert(alert), AZURE_MONITOR))
    else:
        effects.append(AlertRepeated(now))
    if alert.severity is not None and alert.severity.is_more_severe_than(state.severity):
        effects.append(
            Note(
                "severity_raised",
                f"Severity raised from {state.severity} to {alert.severity}",
                AZURE_MONITOR,
            )
        )
        state.severity = alert.severity
        effects.append(Publish.of(state))
    if state.status is IncidentStatus.RESOLVED:
        effects += _reopened(state, now)
    return effects


def _reopened(state: IncidentState, now: datetime) -> list[Effect]:
    state.status = IncidentStatus.TRIGGERED
    state.resolved_at = state.resolved_by = None
    state.acknowledged_at = state.acknowledged_by = None
    esc = state.escalation
    esc.active, esc.next_tier, esc.round, esc.next_page_at = True, 0, 0, now
    return [
        Note("reopened", "Alert fired again within the reopen window: reopened", SYSTEM_ACTOR),
        Publish.of(state),
    ]


def describe_alert(alert: AlertEvent) -> str:
    severity = alert.severity or "no severity"
    shown = [t.rsplit("/", 1)[-1] for t in alert.targets[:TARGETS_NAMED]]
    targets = ", ".join(shown) or "no target"
    if len(alert.targets) > TARGETS_NAMED:
        targets += f" and {len(alert.targets) - TARGETS_NAMED:,} more"
    service = f" via {alert.monitoring_service}" if alert.monitoring_service else ""
    return f"Alert fired: {alert.rule} ({severity}) on {targets}{service}"


# ---- remediation --------------------------------------------------------------


def runbook_reported(state: IncidentState, event: RunbookEvent) -> list[Effect]:
    """A runbook's news: its view is kept, its story told on the timeline, and
    its end may move the incident (contained, mitigated) or hand it to people."""
    is_release = event.runbook == RELEASE_RUNBOOK
    if is_release:
        state.release = event.view
    else:
        state.runbook = event.view
    if event.kind.startswith("step_running"):
        return []  # the finished step tells the story; halve the timeline
    effects: list[Effect] = [
        Note(
            f"runbook:{event.kind}",
            f"[{event.runbook}] {event.summary}",
            f"runbook:{event.runbook}",
        )
    ]
    result = event.result
    if result is None:
        return effects
    if is_release:
        if result.outcome is RunbookOutcome.RELEASED and state.runbook_result:
            state.runbook_result.applied = []
        return effects
    state.runbook_result = result
    target = {
        RunbookOutcome.CONTAINED: IncidentStatus.CONTAINED,
        RunbookOutcome.MITIGATED: IncidentStatus.MITIGATED,
    }.get(result.outcome)
    if target is not None and state.status.is_open and target.order > state.status.order:
        state.status = target
        effects.append(Publish.of(state))
    elif result.outcome is RunbookOutcome.NOT_NEEDED:
        effects.append(
            Note(
                "handed_to_humans",
                "Automation found nothing to remediate: over to on-call",
                SYSTEM_ACTOR,
            )
        )
    elif not result.outcome.succeeded and result.outcome is not RunbookOutcome.CANCELLED:
        effects.append(
            Note(
                "handed_to_humans",
                f"Automation did not finish ({result.outcome}): over to on-call",
                SYSTEM_ACTOR,
            )
        )
    return effects


def runbook_child_id(state: IncidentState, runbook: str, noted: int) -> str:
    """The child workflow's id. From the entries ever noted, not those kept:
    folding must never give two runbooks one id."""
    return f"{state.workflow_id}/{runbook}-{state.runs}-{noted}"


def runbook_started(runbook: str, dry_run: bool, requested_by: str) -> Note:
    return Note(
        "runbook_started",
        f"Runbook {runbook} started{' (dry run)' if dry_run else ''}",
        requested_by,
    )


# ---- closing ------------------------------------------------------------------


def closed(state: IncidentState, now: datetime) -> list[Effect]:
    """The reopen window passed with no alert: the incident is over."""
    state.status = IncidentStatus.CLOSED
    state.closed_at = now
    return [
        Note("closed", "Closed: no alert fired again within the reopen window", SYSTEM_ACTOR),
        Publish.of(state),
    ]
