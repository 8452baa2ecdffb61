"""IncidentWorkflow: one durable incident per alert fingerprint.

triggered -> acknowledged -> contained -> mitigated -> resolved -> closed

The run loop is a small state machine driven by deadlines (the next page, the
end of the reopen window) and by messages (alerts, acks, resolutions). All of
its state is one model, so continue-as-new carries it over and an alert storm
cannot grow the history without bound. The state is bounded too: the timeline
folds its middle away (workflows/timeline.py, every folded entry whole on the
audit trail) and what continue-as-new carries is measured and kept under
CARRIED_BYTES, so no alert and no note can wedge an incident.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    # Signature checks raise cryptography's exceptions from Rust, which finds
    # them by import: they must be the real modules, never sandboxed copies.
    import cryptography.exceptions  # noqa: F401

    from stanch.activities.audit import AuditActivities
    from stanch.activities.notify import NotifyActivities
    from stanch.activities.postmortem import PostmortemActivities, PostmortemRequest
    from stanch.activities.response_plan import ResponsePlanActivities
    from stanch.models.alert import AlertBatch, AlertEvent, MonitorCondition
    from stanch.models.config import ApiRole
    from stanch.models.decision import DecisionKeysRequest, PersonRequest, SpentDecisions
    from stanch.models.duration import format_duration
    from stanch.models.incident import (
        Acknowledge,
        AddNote,
        AssignRole,
        CarriedIncident,
        ChangeStatus,
        IncidentInput,
        IncidentState,
        IncidentStatus,
        IncidentView,
        Page,
        PlanRequest,
        RequestRelease,
        Resolve,
        ResponsePlan,
        RosterEntry,
        TimelineEntry,
        UpdateResult,
    )
    from stanch.models.runbook import (
        AuditEntry,
        RunbookEvent,
        RunbookInput,
        RunbookOutcome,
        RunbookView,
    )
    from stanch.models.severity import DEFAULT_SEVERITY
    from stanch.workflows.decisions import proof_refusal, spend
    from stanch.workflows.escalation import everyone_in_policy, names, tier_recipients
    from stanch.workflows.search_attributes import (
        INCIDENT_RESOURCES,
        INCIDENT_SERVICE,
        INCIDENT_SEVERITY,
        INCIDENT_STATUS,
        searchable_resources,
    )
    from stanch.workflows.timeline import BoundedTimeline, audit_batches, entry

# Azure retries a webhook within minutes; remembering the last few hundred
# alert instances is enough to drop its duplicates without unbounded state.
SEEN_ALERTS_KEPT = 500
AZURE_MONITOR = "azure-monitor"
STANCH = "stanch"
RUNBOOKS_PATCH = "runbooks-v1"  # incidents opened before runbooks existed never start one
AUDIT_ACTIONS_PATCH = "audit-incident-actions"
POSTMORTEM_PATCH = "postmortem-drafts"
# Incidents opened before decisions were signed have no keys in their plan:
# on request (a signal from the gateway) they load them.
DECISION_KEYS_PATCH = "decision-keys-refresh"
# The timeline folds its middle away (workflows/timeline.py), long dedup keys
# are kept as hashes, and what continue-as-new carries is measured and kept
# under CARRIED_BYTES. Runs recorded before kept everything.
BOUNDED_TIMELINE_PATCH = "bounded-timeline"
BOUNDED_CARRY_PATCH = "bounded-carry"
# A batch of alerts updates the listing once, with where the batch left the
# incident: a flapping alert used to upsert the status at every fire and
# resolve, thousands of commands in one workflow task.
PUBLISH_PER_BATCH_PATCH = "publish-once-per-batch"
# The promise is 512 KiB; aim a little under it for the payload's own
# encoding and metadata.
CARRIED_BYTES = 480 * 1024
# Temporal ends a run at 51,200 events; it suggests moving on long before.
HISTORY_HIGH_WATER = 20_000
SEEN_KEY_CHARS = 128  # longer dedup keys are remembered by their SHA-256
FOLDED_AUDIT_BYTES = 256 * 1024  # folded entries per audit record
TARGETS_NAMED = 5  # an alert's timeline line names this many targets, then counts

PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30)
)


def workflow_id_for(incident_id: str) -> str:
    return f"incident-{incident_id}"


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        # Initialised here, not in run: the first alert arrives through
        # signal-with-start and its handler runs before run() does.
        self._timeline: list[TimelineEntry]
        self._plan: ResponsePlan | None
        self._seen: list[str]
        if inp.carried is not None:
            self._state = inp.carried.state
            self._state.runs += 1
            self._timeline = inp.carried.timeline
            self._book = BoundedTimeline(self._timeline)
            self._folded: list[TimelineEntry] = []
            self._plan = inp.carried.plan
            self._seen = inp.carried.seen_alerts
            if self._book.fold_due() and workflow.patched(BOUNDED_TIMELINE_PATCH):
                # Carried over by a run that kept everything.
                self._folded += self._book.fold()
        else:
            alert = inp.first_alert
            now = workflow.now()
            self._state = IncidentState(
                incident_id=inp.incident_id,
                workflow_id=workflow.info().workflow_id,
                title=alert.rule,
                severity=alert.severity or DEFAULT_SEVERITY,
                alert_rule=alert.rule,
                alert_rule_id=alert.rule_id,
                resources=alert.targets,
                opened_at=now,
                monitoring_service=alert.monitoring_service,
            )
            self._state.escalation.next_page_at = now
            self._timeline = []
            self._book = BoundedTimeline(self._timeline)
            self._folded = []
            self._plan = None
            self._seen = []
            self._note("opened", f"Incident opened for {alert.rule}", STANCH)
            workflow.metric_meter().create_counter(
                "stanch_incidents_opened", "incidents opened"
            ).add(1, {"severity": str(self._state.severity)})
        self._wake = False
        self._publish_held = False
        self._seen_set = set(self._seen)
        self._keys_wanted = False
        # Nonces of decisions already acted on (workflows/decisions.py).
        self._spent = inp.carried.spent if inp.carried else SpentDecisions()

    # ---- the run loop -----------------------------------------------------

    @workflow.run
    async def run(self, inp: IncidentInput) -> IncidentState:
        if self._plan is None:
            await self._load_plan()
            if self._plan is not None and self._plan.runbook and workflow.patched(RUNBOOKS_PATCH):
                await self._start_remediation()
        while self._state.status is not IncidentStatus.CLOSED:
            await self._audit_folded()
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new(inp)
            await self._wait_for_next_event()
            if self._keys_wanted:
                await self._refresh_decision_keys()
            await self._act_on_deadlines()
        await self._audit_folded()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _continue_as_new(self, inp: IncidentInput) -> None:
        bounded = False
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            bounded = workflow.patched(BOUNDED_CARRY_PATCH)
            if not bounded:
                break
            self._fit_carried(inp)
            if not self._folded:
                break  # no await from here on: no handler can add to the state
            await self._audit_folded()
        workflow.continue_as_new(self._carried(inp, bounded))

    def _continue_as_new_starved(self) -> bool:
        """Continue-as-new waits for every handler to finish; a steady stream
        of people's requests (each awaits an audit write) could keep it
        waiting until Temporal ends the run at its hard history limit. Far
        past the point where it was suggested, new requests are refused for
        the moment it takes to move on."""
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            and info.get_current_history_length() > HISTORY_HIGH_WATER
        )

    def _carried(self, inp: IncidentInput, bounded: bool) -> IncidentInput:
        first_alert = inp.first_alert
        if bounded:
            # Only a new incident reads first_alert; its targets are in the
            # state already and its description is not needed again.
            first_alert = first_alert.model_copy(update={"targets": [], "description": None})
        return IncidentInput(
            incident_id=inp.incident_id,
            first_alert=first_alert,
            carried=CarriedIncident(
                state=self._state,
                timeline=self._timeline,
                plan=self._plan,
                seen_alerts=self._seen,
                spent=self._spent,
            ),
        )

    def _fit_carried(self, inp: IncidentInput) -> None:
        """Folds more of the timeline until what continue-as-new carries is
        under CARRIED_BYTES. The timeline is the only part that grows with
        time; the rest is bounded where it enters (targets by the alert body,
        the plan by the policy file)."""
        for _ in range(4):
            size = len(self._carried(inp, True).model_dump_json().encode())
            if size <= CARRIED_BYTES:
                return
            folded = self._book.shrink(size - CARRIED_BYTES)
            if not folded:
                break
            self._folded += folded
        workflow.logger.warning(
            "incident %s carries %d bytes into its next run, over the %d aimed for",
            self._state.incident_id,
            len(self._carried(inp, True).model_dump_json().encode()),
            CARRIED_BYTES,
        )

    async def _wait_for_next_event(self) -> None:
        deadline, summary = self._next_deadline()
        timeout = None
        if deadline is not None:
            timeout = max(deadline - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(
                lambda: self._wake or workflow.info().is_continue_as_new_suggested(),
                timeout=timeout,
                timeout_summary=summary,
            )
        except TimeoutError:
            pass
        self._wake = False

    def _next_deadline(self) -> tuple[datetime | None, str | None]:
        esc = self._state.escalation
        if self._state.status is IncidentStatus.RESOLVED and self._plan is not None:
            assert self._state.resolved_at is not None
            return self._state.resolved_at + self._plan.reopen_window, "close after reopen window"
        if esc.active and esc.next_page_at is not None and self._plan is not None:
            return esc.next_page_at, f"page tier {esc.next_tier + 1}"
        return None, None

    async def _act_on_deadlines(self) -> None:
        now = workflow.now()
        deadline, _ = self._next_deadline()
        if deadline is None or now < deadline:
            return
        if self._state.status is IncidentStatus.RESOLVED:
            await self._close(now)
        else:
            await self._escalate(now)

    async def _load_plan(self) -> None:
        self._plan = await workflow.execute_activity_method(
            ResponsePlanActivities.load_response_plan,
            PlanRequest(
                rule=self._state.alert_rule,
                targets=self._state.resources,
                monitoring_service=self._state.monitoring_service,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=PLAN_RETRY,
        )
        self._state.service = self._plan.service
        esc = self._state.escalation
        if esc.active and esc.next_tier == 0 and esc.round == 0:
            esc.next_page_at = workflow.now()  # the escalation clock starts with tier 1's page
        self._note(
            "plan_loaded",
            f"Service {self._plan.service}, escalation policy {self._plan.policy_name}",
            STANCH,
        )
        if self._plan.warning:
            self._note("policy_invalid", self._plan.warning, STANCH)
        self._publish()

    # ---- paging and escalation -------------------------------------------

    async def _escalate(self, now: datetime) -> None:
        assert self._plan is not None
        esc = self._state.escalation
        policy = self._plan.policy
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
            tier_number = esc.next_tier + 1
            esc.next_tier += 1
            # From the deadline, not from `now`: timer latency must not add up
            # across tiers.
            esc.next_page_at = (esc.next_page_at or now) + tier.timeout
            await self._page(tier_recipients(self._plan, tier, now), tier_number, reason)
            return
        if policy.after_last_tier == "repeat" and esc.round < policy.repeat:
            esc.round += 1
            esc.next_tier = 0
            esc.next_page_at = now
            self._wake = True
            return
        if policy.after_last_tier == "broadcast":
            esc.active = False
            await self._page(
                everyone_in_policy(self._plan, now), 0, "no tier acknowledged: broadcast"
            )
            return
        esc.active = False
        esc.next_page_at = None
        self._note(
            "escalation_exhausted",
            "Nobody acknowledged after every tier of the policy; paging stopped",
            STANCH,
        )

    async def _page(self, recipients: list[RosterEntry], tier: int, reason: str) -> None:
        assert self._plan is not None
        self._state.escalation.pages_sent += 1
        workflow.metric_meter().create_counter("stanch_pages_sent", "pages sent").add(1)
        who = f"tier {tier}" if tier else "everyone"
        kind = "paged" if tier <= 1 and self._state.escalation.round == 0 else "escalated"
        self._note(kind, f"Paging {who}: {names(recipients)} ({reason})", STANCH)
        page = Page(
            incident_id=self._state.incident_id,
            workflow_id=self._state.workflow_id,
            title=self._state.title,
            severity=self._state.severity,
            status=self._state.status,
            service=self._state.service,
            resources=self._state.resources,
            recipients=recipients,
            tier=tier,
            round=self._state.escalation.round,
            channels=self._plan.policy.channels,
            reason=reason,
        )
        try:
            result = await workflow.execute_activity_method(
                NotifyActivities.page_on_call,
                page,
                start_to_close_timeout=timedelta(seconds=30),
                # Bounded: escalation must move on to the next tier even if a
                # chat service is down, rather than block on one page.
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=PAGE_RETRY,
                summary=f"page {who}",
            )
        except ActivityError as e:
            cause = e.cause.message if isinstance(e.cause, ApplicationError) else str(e.cause)
            self._note("page_failed", f"Page to {who} failed: {cause}", STANCH)
            return
        if result.failed:
            self._note(
                "page_failed",
                "Channels refused the page: "
                + ", ".join(f"{n} ({result.reasons.get(n, 'refused')})" for n in result.failed),
                STANCH,
            )

    # ---- alerts -----------------------------------------------------------

    @workflow.signal
    def add_alert(self, alert: AlertEvent) -> None:
        # One alert per signal: older gateways, and incidents already running.
        self._apply_alert(alert)

    @workflow.signal
    def add_alerts(self, batch: AlertBatch) -> None:
        # The gateway coalesces a fingerprint's alerts under load; applying
        # them in order through the same path keeps dedup, counts, severity and
        # reopening exactly as if they had arrived one signal each.
        hold = len(batch.alerts) > 1 and workflow.patched(PUBLISH_PER_BATCH_PATCH)
        self._publish_held = hold
        try:
            for alert in batch.alerts:
                self._apply_alert(alert)
        finally:
            self._publish_held = False
        if hold:
            self._publish()

    def _apply_alert(self, alert: AlertEvent) -> None:
        key = self._seen_key(alert)
        if key in self._seen_set:
            return
        self._seen.append(key)
        self._seen_set.add(key)
        if len(self._seen) > SEEN_ALERTS_KEPT:
            self._seen_set.discard(self._seen.pop(0))
        now = workflow.now()
        self._wake = True
        if alert.condition is MonitorCondition.RESOLVED:
            if self._state.status.is_open:
                self._note("alert_resolved", f"Azure Monitor resolved {alert.rule}", AZURE_MONITOR)
                self._resolve(now, AZURE_MONITOR)
            return
        self._state.alert_count += 1
        self._state.last_alert_at = now
        if self._state.alert_count == 1:
            self._note("alert_fired", _describe(alert), AZURE_MONITOR)
        else:
            self._note_repeat(now)
        if alert.severity is not None and alert.severity.is_more_severe_than(self._state.severity):
            self._note(
                "severity_raised",
                f"Severity raised from {self._state.severity} to {alert.severity}",
                AZURE_MONITOR,
            )
            self._state.severity = alert.severity
            self._publish()
        if self._state.status is IncidentStatus.RESOLVED:
            self._reopen(now)

    def _seen_key(self, alert: AlertEvent) -> str:
        key = alert.dedup_key
        if len(key) <= SEEN_KEY_CHARS or not workflow.patched(BOUNDED_TIMELINE_PATCH):
            return key
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()

    def _note_repeat(self, now: datetime) -> None:
        last = self._timeline[-1] if self._timeline else None
        if last is not None and last.kind == "alert_repeated":
            last.count += 1
            last.summary = f"Alert repeated {last.count} times (latest {now:%H:%M:%S}Z)"
        else:
            self._note("alert_repeated", "Alert repeated", AZURE_MONITOR)

    def _reopen(self, now: datetime) -> None:
        self._state.status = IncidentStatus.TRIGGERED
        self._state.resolved_at = self._state.resolved_by = None
        self._state.acknowledged_at = self._state.acknowledged_by = None
        esc = self._state.escalation
        esc.active, esc.next_tier, esc.round, esc.next_page_at = True, 0, 0, now
        self._note("reopened", "Alert fired again within the reopen window: reopened", STANCH)
        self._publish()

    # ---- remediation ------------------------------------------------------

    async def _start_remediation(self) -> None:
        assert self._plan is not None and self._plan.runbook is not None
        choice = self._plan.runbook
        if not self._state.status.is_open or not self._state.resources:
            return
        self._state.runbook = await self._start_runbook(
            choice.name, choice.params, choice.dry_run, STANCH
        )

    async def _start_runbook(
        self, name: str, params: dict[str, Any], dry_run: bool, requested_by: str
    ) -> RunbookView:
        assert self._plan is not None and self._plan.approval is not None
        state = self._state
        # Entries noted, not kept: folding must never give two runbooks one id.
        child_id = f"{state.workflow_id}/{name}-{state.runs}-{self._book.noted}"
        await workflow.start_child_workflow(
            name,
            RunbookInput(
                incident_id=state.incident_id,
                incident_workflow_id=state.workflow_id,
                resource_id=state.resources[0],
                requested_by=requested_by,
                dry_run=dry_run,
                approval=self._plan.approval,
                params=params,
                title=state.title,
                severity=state.severity,
                status=str(state.status),
                service=state.service,
            ),
            id=child_id,
            # The runbook outlives a continue-as-new of this run; it reports back
            # by signal, which always reaches the incident's current run.
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        view = RunbookView(
            runbook=name, workflow_id=child_id, dry_run=dry_run, steps=[], pending=None
        )
        self._note(
            "runbook_started",
            f"Runbook {name} started{' (dry run)' if dry_run else ''}",
            requested_by,
        )
        return view

    @workflow.signal
    def runbook_event(self, event: RunbookEvent) -> None:
        is_release = event.runbook == "release"
        if is_release:
            self._state.release = event.view
        else:
            self._state.runbook = event.view
        if event.kind.startswith("step_running"):
            return  # the finished step tells the story; halve the timeline
        self._note(
            f"runbook:{event.kind}",
            f"[{event.runbook}] {event.summary}",
            f"runbook:{event.runbook}",
        )
        if event.result is None:
            return
        result = event.result
        if is_release:
            if result.outcome is RunbookOutcome.RELEASED and self._state.runbook_result:
                self._state.runbook_result.applied = []
            return
        self._state.runbook_result = result
        target = {
            RunbookOutcome.CONTAINED: IncidentStatus.CONTAINED,
            RunbookOutcome.MITIGATED: IncidentStatus.MITIGATED,
        }.get(result.outcome)
        if (
            target is not None
            and self._state.status.is_open
            and (target.order > self._state.status.order)
        ):
            self._state.status = target
            self._publish()
        elif result.outcome is RunbookOutcome.NOT_NEEDED:
            self._note(
                "handed_to_humans", "Automation found nothing to remediate: over to on-call", STANCH
            )
        elif not result.outcome.succeeded and result.outcome is not RunbookOutcome.CANCELLED:
            self._note(
                "handed_to_humans",
                f"Automation did not finish ({result.outcome}): over to on-call",
                STANCH,
            )

    @workflow.update
    async def request_release(self, request: RequestRelease) -> UpdateResult:
        self._spend(request)
        await self._require_on_roster(request.by)
        applied = self._state.runbook_result.applied if self._state.runbook_result else []
        self._state.release = await self._start_runbook(
            "release",
            {
                "runbook": self._state.runbook_result.runbook if self._state.runbook_result else "",
                "applied": [u.model_dump(mode="json") for u in applied],
            },
            False,
            request.by,
        )
        suffix = f": {request.reason}" if request.reason else ""
        self._note(
            "release_requested",
            f"{self._name(request.by)} asked to release what automation applied{suffix}",
            request.by,
        )
        await self._audit(request.by, "request release", {"reason": request.reason})
        return self._result(True)

    @request_release.validator
    def _validate_request_release(self, request: RequestRelease) -> None:
        self._check_decision("request_release", request)
        result = self._state.runbook_result
        if result is None or not result.applied:
            raise ValueError("nothing to release: no runbook change is in place")
        if self._state.release is not None and self._state.release.outcome is None:
            raise ValueError("a release is already waiting or running")

    # ---- people -----------------------------------------------------------

    @workflow.update
    async def acknowledge(self, request: Acknowledge) -> UpdateResult:
        self._spend(request)
        await self._require_on_roster(request.by)
        changed = self._state.status is IncidentStatus.TRIGGERED
        if changed:
            self._acknowledge(workflow.now(), request.by, request.note)
            await self._audit(request.by, "acknowledge", {"note": request.note})
        return self._result(changed)

    @acknowledge.validator
    def _validate_acknowledge(self, request: Acknowledge) -> None:
        self._check_decision("acknowledge", request)
        if not self._state.status.is_open:
            raise ValueError(f"incident is already {self._state.status}: nothing to acknowledge")

    @workflow.update
    async def resolve(self, request: Resolve) -> UpdateResult:
        self._spend(request)
        await self._require_on_roster(request.by)
        changed = self._state.status.is_open
        if changed:
            suffix = f": {request.note}" if request.note else ""
            self._note("resolved", f"Resolved by {self._name(request.by)}{suffix}", request.by)
            self._resolve(workflow.now(), request.by)
            await self._audit(request.by, "resolve", {"note": request.note})
        return self._result(changed)

    @resolve.validator
    def _validate_resolve(self, request: Resolve) -> None:
        self._check_decision("resolve", request)

    @workflow.update
    async def assign_role(self, request: AssignRole) -> UpdateResult:
        self._spend(request)
        await self._require_on_roster(request.by)
        await self._require_on_roster(request.assignee)
        changed = self._state.roles.get(request.role) != request.assignee
        if changed:
            self._state.roles[request.role] = request.assignee
            self._note(
                "role_assigned",
                f"{self._name(request.assignee)} is {request.role.replace('_', ' ')} "
                f"(assigned by {self._name(request.by)})",
                request.by,
            )
            await self._audit(
                request.by, "assign role", {"role": str(request.role), "assignee": request.assignee}
            )
        return self._result(changed)

    @assign_role.validator
    def _validate_assign_role(self, request: AssignRole) -> None:
        self._check_decision("assign_role", request)
        if self._plan is not None and not self._plan.on_roster(request.assignee):
            raise ValueError(f"assignee {request.assignee!r} is not on the roster")

    @workflow.update
    async def add_note(self, request: AddNote) -> UpdateResult:
        self._spend(request)
        await self._require_on_roster(request.by)
        self._note("note", request.text, request.by)
        await self._audit(request.by, "note", {"text": request.text})
        return self._result(True)

    @add_note.validator
    def _validate_add_note(self, request: AddNote) -> None:
        self._check_decision("add_note", request)

    @workflow.update
    async def change_status(self, request: ChangeStatus) -> UpdateResult:
        self._spend(request)
        await self._require_on_roster(request.by)
        now = workflow.now()
        if self._state.status is IncidentStatus.TRIGGERED:
            self._acknowledge(now, request.by, None)
        self._state.status = request.status
        suffix = f": {request.note}" if request.note else ""
        self._note(
            str(request.status),
            f"Marked {request.status} by {self._name(request.by)}{suffix}",
            request.by,
        )
        self._publish()
        await self._audit(request.by, f"mark {request.status}", {"note": request.note})
        return self._result(True)

    @change_status.validator
    def _validate_change_status(self, request: ChangeStatus) -> None:
        self._check_decision("change_status", request)
        if request.status not in (IncidentStatus.CONTAINED, IncidentStatus.MITIGATED):
            raise ValueError("status: only contained or mitigated can be set this way")
        if not self._state.status.is_open:
            raise ValueError(f"incident is already {self._state.status}")
        if request.status.order <= self._state.status.order:
            raise ValueError(f"incident is already {self._state.status}; status only moves forward")

    def _check_decision(self, action: str, request: PersonRequest) -> None:
        """A person's request counts only as the gateway signed it, for this
        incident and action, with a credential of at least responder."""
        self._check_actor(request.by)
        keys = self._plan.approval.decision_keys if self._plan and self._plan.approval else {}
        reason = proof_refusal(
            request.proof,
            workflow_id=workflow.info().workflow_id,
            action=action,
            request=request,
            keys=keys,
            now=workflow.now(),
            spent=self._spent,
            minimum=ApiRole.RESPONDER,
        )
        if reason:
            raise ValueError(reason)

    def _spend(self, request: PersonRequest) -> None:
        # Two updates carrying one proof can both pass their validators before
        # either handler runs: the second is refused here.
        if request.proof is not None and request.proof.nonce in self._spent.nonces:
            raise ApplicationError("decision already used", type="DecisionReplayed")
        spend(self._spent, request.proof, workflow.now())

    @workflow.signal
    def refresh_decision_keys(self) -> None:
        """Sent by the gateway when this incident's plan predates signed
        decisions: the run loop reloads the keys from the policy. Harmless from
        anyone: the keys come from the policy file, never from the signal."""
        self._keys_wanted = True
        self._wake = True

    async def _refresh_decision_keys(self) -> None:
        self._keys_wanted = False
        if self._plan is None or self._plan.approval is None:
            return
        if not workflow.patched(DECISION_KEYS_PATCH):
            return
        fresh = await workflow.execute_activity_method(
            ResponsePlanActivities.load_decision_keys,
            DecisionKeysRequest(),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=PLAN_RETRY,
        )
        self._plan.approval.decision_keys = fresh.keys

    def _check_actor(self, person: str) -> None:
        # The roster arrives by activity just after the incident opens; until
        # then the handler re-checks once it is there.
        if self._plan is not None and not self._plan.on_roster(person):
            raise ValueError(f"{person!r} is not on the roster")
        if self._state.status is IncidentStatus.CLOSED:
            raise ValueError("incident is closed")
        if self._continue_as_new_starved():
            raise ValueError("incident is moving to a new run: send it again in a moment")

    async def _require_on_roster(self, person: str) -> None:
        await workflow.wait_condition(lambda: self._plan is not None)
        assert self._plan is not None
        if not self._plan.on_roster(person):
            raise ApplicationError(f"{person!r} is not on the roster", type="NotOnRoster")

    # ---- transitions --------------------------------------------------------

    def _acknowledge(self, now: datetime, by: str, note: str | None) -> None:
        self._state.status = IncidentStatus.ACKNOWLEDGED
        self._state.acknowledged_at = now
        workflow.metric_meter().create_histogram_timedelta(
            "stanch_time_to_acknowledge", "MTTA: first alert to acknowledgement"
        ).record(now - self._state.opened_at, {"severity": str(self._state.severity)})
        self._state.acknowledged_by = by
        self._stop_paging()
        suffix = f": {note}" if note else ""
        self._note("acknowledged", f"Acknowledged by {self._name(by)}; paging stopped{suffix}", by)
        self._publish()

    def _resolve(self, now: datetime, by: str) -> None:
        self._state.status = IncidentStatus.RESOLVED
        self._state.resolved_at = now
        workflow.metric_meter().create_histogram_timedelta(
            "stanch_time_to_resolve", "MTTR: first alert to resolution"
        ).record(now - self._state.opened_at, {"severity": str(self._state.severity)})
        self._state.resolved_by = by
        self._stop_paging()
        self._wake = True
        self._publish()

    async def _close(self, now: datetime) -> None:
        for view in (self._state.runbook, self._state.release):
            if view is not None and view.outcome is None:
                # Nothing left to remediate: stop waiting for approvals.
                await workflow.get_external_workflow_handle(view.workflow_id).cancel()
        self._state.status = IncidentStatus.CLOSED
        self._state.closed_at = now
        # Open incidents = opened - closed (both counters), by severity.
        workflow.metric_meter().create_counter("stanch_incidents_closed", "incidents closed").add(
            1, {"severity": str(self._state.severity)}
        )
        self._note("closed", "Closed: no alert fired again within the reopen window", STANCH)
        self._publish()
        if workflow.patched(POSTMORTEM_PATCH):
            draft = await workflow.execute_activity_method(
                PostmortemActivities.draft_postmortem,
                PostmortemRequest(state=self._state, timeline=self._timeline),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=PLAN_RETRY,
            )
            self._note("postmortem_drafted", f"Postmortem draft: {draft.location}", STANCH)

    def _stop_paging(self) -> None:
        self._state.escalation.active = False
        self._state.escalation.next_page_at = None
        self._wake = True

    # ---- queries and helpers ------------------------------------------------

    @workflow.query
    def state(self) -> IncidentView:
        return IncidentView(state=self._state, plan_loaded=self._plan is not None)

    @workflow.query
    def timeline(self) -> list[TimelineEntry]:
        return self._timeline

    def _note(self, kind: str, summary: str, actor: str | None) -> None:
        fold_due = self._book.add(entry(workflow.now(), kind, summary, actor))
        if fold_due and workflow.patched(BOUNDED_TIMELINE_PATCH):
            self._folded += self._book.fold()
            self._wake = True  # the run loop writes them to the audit trail

    async def _audit_folded(self) -> None:
        """Entries folded out of the timeline, whole, on the audit trail."""
        folded, self._folded = self._folded, []
        for batch in audit_batches(folded, FOLDED_AUDIT_BYTES):
            await self._audit(
                STANCH,
                "timeline entries folded",
                {"entries": [e.model_dump(mode="json") for e in batch]},
            )

    async def _audit(self, actor: str, action: str, details: dict[str, Any]) -> None:
        """Who did what to this incident, on the audit trail."""
        if not workflow.patched(AUDIT_ACTIONS_PATCH):
            return  # incidents opened before actions were audited
        await workflow.execute_activity_method(
            AuditActivities.record_audit,
            AuditEntry(
                incident_id=self._state.incident_id,
                actor=actor,
                action=action,
                target=self._state.workflow_id,
                outcome=str(self._state.status),
                details=details,
                at=workflow.now(),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=PLAN_RETRY,
        )

    def _name(self, person: str) -> str:
        return self._plan.display_name(person) if self._plan else person

    def _result(self, changed: bool) -> UpdateResult:
        return UpdateResult(
            incident_id=self._state.incident_id, status=self._state.status, changed=changed
        )

    def _publish(self) -> None:
        """Keep the listing's search attributes in step with the state.

        Only when the starter set them: a namespace without stanch's search
        attributes registered (the time-skipping test server, a cluster whose
        operator has not run the setup yet) would fail every workflow task."""
        if self._publish_held:
            return  # the batch publishes once, when it is all applied
        current = workflow.info().typed_search_attributes
        if current.get(INCIDENT_STATUS) is None:
            return
        wanted: list[SearchAttributeUpdate[Any]] = [
            INCIDENT_STATUS.value_set(str(self._state.status)),
            INCIDENT_SEVERITY.value_set(str(self._state.severity)),
            INCIDENT_RESOURCES.value_set(searchable_resources(self._state.resources)),
        ]
        if self._state.service:
            wanted.append(INCIDENT_SERVICE.value_set(self._state.service))
        changes = [u for u in wanted if current.get(u.key) != u.value]
        if changes:
            workflow.upsert_search_attributes(changes)


def _describe(alert: AlertEvent) -> str:
    severity = alert.severity or "no severity"
    shown = [t.rsplit("/", 1)[-1] for t in alert.targets[:TARGETS_NAMED]]
    targets = ", ".join(shown) or "no target"
    if len(alert.targets) > TARGETS_NAMED:
        targets += f" and {len(alert.targets) - TARGETS_NAMED:,} more"
    service = f" via {alert.monitoring_service}" if alert.monitoring_service else ""
    return f"Alert fired: {alert.rule} ({severity}) on {targets}{service}"
