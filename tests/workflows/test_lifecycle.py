"""The incident lifecycle (workflows/lifecycle.py): every decision the
IncidentWorkflow makes, without a server. What the workflow does with them
(timers, pages, search attributes) is tests/workflows/test_escalation.py and friends;
here, which transition happens, what it leaves behind, and in what order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stanch.models.alert import AlertEvent, MonitorCondition
from stanch.models.config import AfterLastTier, EscalationPolicy, Tier
from stanch.models.incident import (
    IncidentState,
    ResponsePlan,
    Role,
    RosterEntry,
    TimelineEntry,
)
from stanch.models.runbook import RunbookEvent, RunbookResult, RunbookView, Undo
from stanch.models.severity import Severity
from stanch.models.status import IncidentStatus, RunbookOutcome
from stanch.workflows import lifecycle
from stanch.workflows.lifecycle import (
    AZURE_MONITOR,
    SEEN_ALERTS_KEPT,
    SYSTEM_ACTOR,
    AlertRepeated,
    Broadcast,
    Exhausted,
    Measure,
    Note,
    PageTier,
    Publish,
    SeenAlerts,
    StartOver,
    Wake,
)

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


def alert(
    condition: MonitorCondition = MonitorCondition.FIRED,
    severity: Severity | None = Severity.SEV2,
    alert_id: str = "a-1",
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id, condition=condition, rule="cpu high", severity=severity, targets=[VM]
    )


def policy(after: AfterLastTier = AfterLastTier.STOP, repeat: int = 2) -> EscalationPolicy:
    return EscalationPolicy(
        tiers=[
            Tier(people=["alice"], timeout=timedelta(minutes=5)),
            Tier(people=["bob"], timeout=timedelta(minutes=10)),
        ],
        after_last_tier=after,
        repeat=repeat,
    )


def plan(after: AfterLastTier = AfterLastTier.STOP) -> ResponsePlan:
    return ResponsePlan(
        service="web",
        policy_name="default",
        policy=policy(after),
        roster=[RosterEntry(id="alice", name="Alice A"), RosterEntry(id="bob", name="Bob B")],
        reopen_window=timedelta(hours=1),
    )


def new_incident() -> IncidentState:
    state = lifecycle.opened("inc-1", "incident-inc-1", alert(), T0)
    lifecycle.alert_arrived(state, alert(), T0)
    return state


def notes(effects: list[lifecycle.Effect]) -> list[str]:
    return [e.kind for e in effects if isinstance(e, Note)]


# ---- opening and deadlines ----------------------------------------------------


def test_an_incident_opens_triggered_with_paging_due_at_once():
    state = lifecycle.opened("inc-1", "incident-inc-1", alert(severity=None), T0)
    assert state.status is IncidentStatus.TRIGGERED
    assert state.severity is Severity.SEV3  # no severity on the alert: the default
    assert state.escalation.next_page_at == T0
    assert lifecycle.opening_note(alert()) == Note(
        "opened", "Incident opened for cpu high", SYSTEM_ACTOR
    )


def test_nothing_is_due_before_the_plan_is_loaded():
    assert lifecycle.next_deadline(new_incident(), None) is None


def test_loading_the_plan_names_the_service_and_publishes_last():
    state = new_incident()
    effects = lifecycle.plan_loaded(state, plan(), T0 + timedelta(seconds=3))
    assert state.service == "web"
    assert state.escalation.next_page_at == T0 + timedelta(seconds=3)
    assert notes(effects) == ["plan_loaded"]
    assert effects[-1] == Publish(IncidentStatus.TRIGGERED, Severity.SEV2)


def test_an_invalid_policy_file_is_on_the_timeline():
    state = new_incident()
    broken = plan().model_copy(update={"warning": "stanch.yaml: roster[0].id: missing"})
    assert notes(lifecycle.plan_loaded(state, broken, T0)) == ["plan_loaded", "policy_invalid"]


def test_the_next_deadline_is_the_next_page_then_the_end_of_the_reopen_window():
    state, p = new_incident(), plan()
    page = lifecycle.next_deadline(state, p)
    assert page is not None and (page.at, page.summary, page.closes) == (T0, "page tier 1", False)

    lifecycle.resolve(state, p, T0 + timedelta(minutes=2), "alice", None)
    close = lifecycle.next_deadline(state, p)
    assert close is not None and close.closes
    assert close.at == T0 + timedelta(minutes=2) + p.reopen_window


# ---- escalation ---------------------------------------------------------------


def test_tiers_are_paged_in_order_each_timed_from_the_last_deadline():
    state, p = new_incident(), policy()
    esc = state.escalation
    first = lifecycle.escalate(esc, p, T0)
    assert first == PageTier(p.tiers[0], 1, "incident opened")
    assert esc.next_page_at == T0 + timedelta(minutes=5)

    # The timer fired late: the next deadline still counts from the last one.
    second = lifecycle.escalate(esc, p, T0 + timedelta(minutes=5, seconds=7))
    assert second == PageTier(p.tiers[1], 2, "tier 1 did not acknowledge within 5m")
    assert esc.next_page_at == T0 + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("after", "repeat", "expected"),
    [
        (AfterLastTier.STOP, 2, Exhausted),
        (AfterLastTier.BROADCAST, 2, Broadcast),
        (AfterLastTier.REPEAT, 2, StartOver),
        (AfterLastTier.REPEAT, 0, Exhausted),  # no rounds left to repeat
    ],
)
def test_after_the_last_tier_the_policy_decides(after, repeat, expected):
    state, p = new_incident(), policy(after, repeat)
    esc = state.escalation
    lifecycle.escalate(esc, p, T0)
    lifecycle.escalate(esc, p, T0 + timedelta(minutes=5))
    step = lifecycle.escalate(esc, p, T0 + timedelta(minutes=15))
    assert isinstance(step, expected)
    assert esc.active is (expected is StartOver)
    if expected is Exhausted:
        assert esc.next_page_at is None
        assert step.note.kind == "escalation_exhausted"


def test_a_repeated_policy_starts_over_at_tier_one_as_a_new_round():
    state, p = new_incident(), policy(AfterLastTier.REPEAT, repeat=1)
    esc = state.escalation
    for at in (T0, T0 + timedelta(minutes=5)):
        lifecycle.escalate(esc, p, at)
    over = T0 + timedelta(minutes=15)
    assert lifecycle.escalate(esc, p, over) == StartOver()
    assert (esc.round, esc.next_tier, esc.next_page_at) == (1, 0, over)
    again = lifecycle.escalate(esc, p, over)
    assert again == PageTier(p.tiers[0], 1, "nobody acknowledged; round 2 of the policy")
    assert lifecycle.paged_note(1, esc.round, "Alice A", again.reason).kind == "escalated"
    assert lifecycle.paged_note(1, 0, "Alice A", "incident opened").kind == "paged"
    assert lifecycle.paged_note(0, 0, "everyone", "broadcast").summary.startswith(
        "Paging everyone:"
    )


# ---- people ---------------------------------------------------------------------


def test_an_ack_stops_paging_measures_mtta_and_publishes():
    state, p = new_incident(), plan()
    effects = lifecycle.acknowledge(state, p, T0 + timedelta(minutes=3), "alice", "on it")
    assert effects == [
        Measure(
            "stanch_time_to_acknowledge",
            "MTTA: first alert to acknowledgement",
            timedelta(minutes=3),
            Severity.SEV2,
        ),
        Wake(),
        Note("acknowledged", "Acknowledged by Alice A; paging stopped: on it", "alice"),
        Publish(IncidentStatus.ACKNOWLEDGED, Severity.SEV2),
    ]
    assert state.status is IncidentStatus.ACKNOWLEDGED
    assert (state.escalation.active, state.escalation.next_page_at) == (False, None)
    assert lifecycle.next_deadline(state, p) is None


def test_a_second_ack_changes_nothing():
    state, p = new_incident(), plan()
    lifecycle.acknowledge(state, p, T0, "alice", None)
    before = state.model_copy(deep=True)
    assert lifecycle.acknowledge(state, p, T0 + timedelta(minutes=1), "bob", None) is None
    assert state == before
    assert lifecycle.acknowledge_refusal(state) is None  # still open: a retry is harmless


def test_a_resolved_incident_cannot_be_acknowledged():
    state = new_incident()
    lifecycle.resolve(state, plan(), T0, "alice", None)
    assert lifecycle.acknowledge_refusal(state) == (
        "incident is already resolved: nothing to acknowledge"
    )


def test_resolving_notes_who_then_measures_mttr():
    state = new_incident()
    effects = lifecycle.resolve(state, plan(), T0 + timedelta(hours=1), "bob", "rolled back")
    assert effects is not None
    assert effects[0] == Note("resolved", "Resolved by Bob B: rolled back", "bob")
    assert (
        Measure(
            "stanch_time_to_resolve",
            "MTTR: first alert to resolution",
            timedelta(hours=1),
            Severity.SEV2,
        )
        in effects
    )
    assert (state.status, state.resolved_by) == (IncidentStatus.RESOLVED, "bob")
    assert lifecycle.resolve(state, plan(), T0, "bob", None) is None


@pytest.mark.parametrize(
    ("now", "wanted", "refusal"),
    [
        (IncidentStatus.TRIGGERED, IncidentStatus.CONTAINED, None),
        (IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED, None),
        (IncidentStatus.CONTAINED, IncidentStatus.MITIGATED, None),
        (
            IncidentStatus.MITIGATED,
            IncidentStatus.CONTAINED,
            "incident is already mitigated; status only moves forward",
        ),
        (
            IncidentStatus.CONTAINED,
            IncidentStatus.CONTAINED,
            "incident is already contained; status only moves forward",
        ),
        (
            IncidentStatus.TRIGGERED,
            IncidentStatus.RESOLVED,
            "status: only contained or mitigated can be set this way",
        ),
        (
            IncidentStatus.TRIGGERED,
            IncidentStatus.ACKNOWLEDGED,
            "status: only contained or mitigated can be set this way",
        ),
        (IncidentStatus.RESOLVED, IncidentStatus.MITIGATED, "incident is already resolved"),
    ],
)
def test_status_only_moves_forward_by_hand(now, wanted, refusal):
    state = new_incident()
    state.status = now
    assert lifecycle.status_change_refusal(state, wanted) == refusal


def test_marking_a_triggered_incident_contained_acknowledges_it_first():
    state, p = new_incident(), plan()
    effects = lifecycle.change_status(
        state, p, T0 + timedelta(minutes=1), IncidentStatus.CONTAINED, "alice", "isolated"
    )
    assert notes(effects) == ["acknowledged", "contained"]
    # Two publishes, each with the state as it stood: a recorded incident
    # upserted "acknowledged" and then "contained".
    assert [e for e in effects if isinstance(e, Publish)] == [
        Publish(IncidentStatus.ACKNOWLEDGED, Severity.SEV2),
        Publish(IncidentStatus.CONTAINED, Severity.SEV2),
    ]
    assert (state.status, state.acknowledged_by) == (IncidentStatus.CONTAINED, "alice")


def test_a_role_is_assigned_once():
    state, p = new_incident(), plan()
    effects = lifecycle.assign_role(state, p, Role.INCIDENT_COMMANDER, "bob", "alice")
    assert effects == [
        Note("role_assigned", "Bob B is incident commander (assigned by Alice A)", "alice")
    ]
    assert lifecycle.assign_role(state, p, Role.INCIDENT_COMMANDER, "bob", "alice") is None


def test_a_release_needs_something_applied_and_none_running():
    state = new_incident()
    assert lifecycle.release_refusal(state) == "nothing to release: no runbook change is in place"
    state.runbook_result = RunbookResult(
        runbook="quarantine_vm",
        outcome=RunbookOutcome.CONTAINED,
        summary="contained",
        steps=[],
        applied=[Undo(step="lock", activity="remove_lock", arg={})],
    )
    assert lifecycle.release_refusal(state) is None
    state.release = RunbookView(
        runbook="release", workflow_id="w/release-1-9", dry_run=False, steps=[], pending=None
    )
    assert lifecycle.release_refusal(state) == "a release is already waiting or running"


# ---- alerts: dedup, repeats, severity, reopen -------------------------------------


def test_the_dedup_memory_drops_repeats_and_forgets_the_oldest():
    keys: list[str] = []
    seen = SeenAlerts(keys)
    assert seen.first_time("a|Fired")
    assert not seen.first_time("a|Fired")
    for i in range(SEEN_ALERTS_KEPT):
        assert seen.first_time(f"k{i}|Fired")
    assert len(keys) == SEEN_ALERTS_KEPT and "a|Fired" not in keys  # edited in place
    assert seen.first_time("a|Fired")  # forgotten, so counted again
    assert not SeenAlerts(list(keys)).first_time("a|Fired")  # carried over: still known


def test_long_dedup_keys_are_kept_as_hashes():
    long = "x" * 500 + "|Fired"
    assert lifecycle.is_long_key(long) and not lifecycle.is_long_key("a|Fired")
    assert lifecycle.hashed_key(long).startswith("sha256:")
    assert len(lifecycle.hashed_key(long)) == len("sha256:") + 64


def test_the_first_alert_is_described_and_repeats_are_counted_on_one_line():
    state = lifecycle.opened("inc-1", "incident-inc-1", alert(), T0)
    first = lifecycle.alert_arrived(state, alert(), T0)
    assert first == [
        Wake(),
        Note("alert_fired", "Alert fired: cpu high (Sev2) on vm1", AZURE_MONITOR),
    ]
    later = T0 + timedelta(minutes=1)
    assert lifecycle.alert_arrived(state, alert(alert_id="a-2"), later) == [
        Wake(),
        AlertRepeated(later),
    ]
    assert (state.alert_count, state.last_alert_at) == (2, later)

    timeline: list[TimelineEntry] = []
    assert not lifecycle.counted_as_repeat(timeline, later)  # nothing to count on
    timeline.append(
        TimelineEntry(at=later, kind=lifecycle.REPEATED.kind, summary=lifecycle.REPEATED.summary)
    )
    assert lifecycle.counted_as_repeat(timeline, T0 + timedelta(minutes=2))
    assert timeline[-1].count == 2
    assert timeline[-1].summary == "Alert repeated 2 times (latest 03:02:00Z)"


def test_an_alert_with_many_targets_names_five_and_counts_the_rest():
    many = alert().model_copy(update={"targets": [f"/x/vm{i}" for i in range(12)]})
    assert lifecycle.describe_alert(many).endswith("on vm0, vm1, vm2, vm3, vm4 and 7 more")


def test_a_more_severe_alert_raises_the_severity_and_publishes_it():
    state = new_incident()
    effects = lifecycle.alert_arrived(state, alert(severity=Severity.SEV0, alert_id="a-2"), T0)
    assert Note("severity_raised", "Severity raised from Sev2 to Sev0", AZURE_MONITOR) in effects
    assert effects[-1] == Publish(IncidentStatus.TRIGGERED, Severity.SEV0)
    assert state.severity is Severity.SEV0
    # A less severe one changes nothing.
    assert Publish not in map(type, lifecycle.alert_arrived(state, alert(alert_id="a-3"), T0))


def test_azure_resolving_the_alert_resolves_an_open_incident_only():
    state = new_incident()
    effects = lifecycle.alert_arrived(state, alert(MonitorCondition.RESOLVED), T0)
    assert notes(effects) == ["alert_resolved"]
    assert (state.status, state.resolved_by) == (IncidentStatus.RESOLVED, AZURE_MONITOR)
    again = lifecycle.alert_arrived(state, alert(MonitorCondition.RESOLVED, alert_id="a-2"), T0)
    assert again == [Wake()]


def test_an_alert_in_the_reopen_window_reopens_and_pages_from_tier_one():
    state, p = new_incident(), plan()
    lifecycle.acknowledge(state, p, T0, "alice", None)
    lifecycle.resolve(state, p, T0 + timedelta(minutes=5), "alice", None)
    back = T0 + timedelta(minutes=20)
    effects = lifecycle.alert_arrived(state, alert(severity=Severity.SEV1, alert_id="a-9"), back)
    # Raised, then reopened: two publishes, each as the state stood then.
    assert [e for e in effects if isinstance(e, Publish)] == [
        Publish(IncidentStatus.RESOLVED, Severity.SEV1),
        Publish(IncidentStatus.TRIGGERED, Severity.SEV1),
    ]
    assert notes(effects)[-1] == "reopened"
    assert state.status is IncidentStatus.TRIGGERED
    assert (state.acknowledged_by, state.resolved_at) == (None, None)
    esc = state.escalation
    assert (esc.active, esc.next_tier, esc.round, esc.next_page_at) == (True, 0, 0, back)


# ---- remediation and closing --------------------------------------------------------


def event(runbook: str, kind: str, outcome: RunbookOutcome | None = None) -> RunbookEvent:
    view = RunbookView(
        runbook=runbook, workflow_id=f"w/{runbook}", dry_run=False, steps=[], pending=None
    )
    result = None
    if outcome is not None:
        applied = [Undo(step="lock", activity="remove_lock", arg={})]
        result = RunbookResult(
            runbook=runbook, outcome=outcome, summary=str(outcome), steps=[], applied=applied
        )
    return RunbookEvent(
        runbook=runbook,
        workflow_id=view.workflow_id,
        kind=kind,
        summary="s",
        view=view,
        result=result,
    )


def test_a_running_step_is_kept_but_not_told():
    state = new_incident()
    assert lifecycle.runbook_reported(state, event("quarantine_vm", "step_running")) == []
    assert state.runbook is not None


@pytest.mark.parametrize(
    ("outcome", "status", "handed_over"),
    [
        (RunbookOutcome.CONTAINED, IncidentStatus.CONTAINED, False),
        (RunbookOutcome.MITIGATED, IncidentStatus.MITIGATED, False),
        (RunbookOutcome.NOT_NEEDED, IncidentStatus.TRIGGERED, True),
        (RunbookOutcome.DENIED, IncidentStatus.TRIGGERED, True),
        (RunbookOutcome.FAILED, IncidentStatus.TRIGGERED, True),
        (RunbookOutcome.CANCELLED, IncidentStatus.TRIGGERED, False),
        (RunbookOutcome.PLANNED, IncidentStatus.TRIGGERED, False),
    ],
)
def test_a_runbook_end_moves_the_incident_or_hands_it_to_people(outcome, status, handed_over):
    state = new_incident()
    effects = lifecycle.runbook_reported(state, event("quarantine_vm", "finished", outcome))
    assert state.status is status
    assert ("handed_to_humans" in notes(effects)) is handed_over
    assert (Publish(status, Severity.SEV2) in effects) is (status is not IncidentStatus.TRIGGERED)


def test_a_runbook_never_moves_status_backwards():
    state = new_incident()
    state.status = IncidentStatus.MITIGATED
    effects = lifecycle.runbook_reported(
        state, event("quarantine_vm", "finished", RunbookOutcome.CONTAINED)
    )
    assert state.status is IncidentStatus.MITIGATED
    assert not any(isinstance(e, Publish) for e in effects)


def test_a_finished_release_clears_what_was_applied():
    state = new_incident()
    lifecycle.runbook_reported(state, event("quarantine_vm", "finished", RunbookOutcome.CONTAINED))
    assert state.runbook_result is not None and state.runbook_result.applied
    lifecycle.runbook_reported(state, event("release", "finished", RunbookOutcome.RELEASED))
    assert state.release is not None
    assert state.runbook_result.applied == []
    assert (
        state.runbook_result.outcome is RunbookOutcome.CONTAINED
    )  # the release is not the remediation


def test_child_runbook_ids_come_from_entries_ever_noted():
    state = new_incident()
    assert lifecycle.runbook_child_id(state, "release", 412) == "incident-inc-1/release-1-412"


def test_closing_is_the_last_transition():
    state = new_incident()
    effects = lifecycle.closed(state, T0 + timedelta(hours=2))
    assert (state.status, state.closed_at) == (IncidentStatus.CLOSED, T0 + timedelta(hours=2))
    assert effects == [
        Note("closed", "Closed: no alert fired again within the reopen window", SYSTEM_ACTOR),
        Publish(IncidentStatus.CLOSED, Severity.SEV2),
    ]


def test_the_lifecycle_has_no_temporal_in_it():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(lifecycle.__file__).read_text())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert "stanch.models.incident" in modules  # the scan sees the imports
    assert [m for m in modules if m.split(".")[0] == "temporalio"] == []
