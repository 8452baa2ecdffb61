"""IncidentWorkflow: one durable incident per alert fingerprint.

triggered -> acknowledged -> contained -> mitigated -> resolved -> closed

A thin shell around workflows/lifecycle.py, which decides every transition
(status, escalation, dedup and reopen) with no Temporal in it: here are the
handlers, the waits, the activities and the child workflows, and the effects
the lifecycle asks for applied in order.

The run loop is driven by deadlines (the next page, the end of the reopen
window) and by messages (alerts, people's requests, runbook events). All of
its state is one model, so continue-as-new carries it over and an alert storm
cannot grow the history without bound. The state is bounded too: the timeline
folds its middle away (workflows/timeline.py, every folded entry whole on the
audit trail) and what continue-as-new carries is measured and kept under
CARRIED_BYTES, so no alert and no note can wedge an incident.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
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
    from stanch.activities.postmortem import PostmortemActivities
    from stanch.activities.priority import raise_incident_priority
    from stanch.activities.response_plan import ResponsePlanActivities
    from stanch.client.search_attributes import (
        INCIDENT_RESOURCES,
        INCIDENT_SERVICE,
        INCIDENT_SEVERITY,
        INCIDENT_STATUS,
        searchable_resources,
    )
    from stanch.models.access_grant import INCIDENT_CLOSED, AccessEvent
    from stanch.models.alert import AlertBatch, AlertEvent
    from stanch.models.audit import AuditEntry
    from stanch.models.communications import CommsName
    from stanch.models.config import ApiRole
    from stanch.models.correlation import is_grouped
    from stanch.models.decision import DecisionKeysRequest, PersonRequest, SpentDecisions
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
        PriorityChange,
        RequestRelease,
        Resolve,
        ResponsePlan,
        RosterEntry,
        TimelineEntry,
        UpdateResult,
    )
    from stanch.models.messages import (
        RELEASE_RUNBOOK,
        IncidentQuery,
        IncidentSignal,
        IncidentUpdate,
    )
    from stanch.models.postmortem import PostmortemRequest
    from stanch.models.runbook import RunbookEvent, RunbookInput, RunbookView
    from stanch.models.severity import DEFAULT_PRIORITY_KEY
    from stanch.models.status_updates import CommsEvent
    from stanch.workflows import grouping, lifecycle
    from stanch.workflows.access_book import access_reported, grants_to_end
    from stanch.workflows.communications import CommsLink
    from stanch.workflows.escalation import everyone_in_policy, names, tier_recipients
    from stanch.workflows.lifecycle import (
        SYSTEM_ACTOR,
        AlertRepeated,
        Broadcast,
        Deadline,
        Effect,
        Exhausted,
        Measure,
        Note,
        PageTier,
        Publish,
        SeenAlerts,
        StartOver,
        Wake,
    )
    from stanch.workflows.quiet_hours import held_for_maintenance
    from stanch.workflows.refusal import refused
    from stanch.workflows.signed_requests import spend_once, unproven
    from stanch.workflows.timeline import BoundedTimeline, audit_batches, entry

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
# Emergency access grants still open when the incident closes are told to
# end (workflows/access_grant.py): no access outlives its incident.
END_ACCESS_ON_CLOSE_PATCH = "end-access-on-close"
# The run loop keeps its deadline's timer while the deadline stays where it
# was: every alert batch of a storm used to cancel it and start another (two
# commands, two events and the server's timer work per workflow task).
STEADY_DEADLINE_TIMER_PATCH = "steady-deadline-timer"
# Stakeholders hear through the incident's communications workflow
# (workflows/communications.py): started and briefed on every status change.
COMMUNICATIONS_PATCH = "communications"
# Issue 17: a grouped incident keeps its related alerts as parts (workflows/
# grouping.py); a page due in a maintenance window waits for its end
# (workflows/quiet_hours.py). Asked only of grouped incidents / plans with
# windows, which no incident recorded before them had.
GROUPED_PARTS_PATCH = "grouped-parts"
QUIET_HOURS_PATCH = "quiet-hours"
# An incident's task priority follows its severity up (activities/priority.py).
# Asked only when a more severe alert joined a listed incident.
PRIORITY_FOLLOWS_SEVERITY_PATCH = "priority-follows-severity"
# At most ALERTS_PER_TASK alerts are applied in one workflow task; the rest
# wait in the run loop for the next. Every signal that piled up while no worker
# ran (a restart during a storm) comes in one activation: 30,000 alerts took a
# loaded worker past the SDK's 2 s deadlock limit, the task failed again at each
# retry and the incident answered nothing for as long as the load lasted. (The
# first task still decodes the whole pile; only applying it is paced.)
# Held alerts are stamped when applied, seconds late at most; deadlines and
# people's requests wait for them. A run that replays an alert from before
# this patch stays unpaced until it continues as new.
PACED_ALERTS_PATCH = "paced-alert-batches"
ALERTS_PER_TASK = 1_000  # ~0.1 s of a quiet worker's time
PACE = timedelta(milliseconds=1)  # a timer only to end the workflow task
# The promise is 512 KiB; aim a little under it for the payload's own
# encoding and metadata.
CARRIED_BYTES = 480 * 1024
# Temporal ends a run at 51,200 events; it suggests moving on long before.
HISTORY_HIGH_WATER = 20_000
FOLDED_AUDIT_BYTES = 256 * 1024  # folded entries per audit record

PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30)
)

# What a person's request changes: the timeline lines and the rest
# (workflows/lifecycle.py), or None when nothing changed (a retried ack).
Change = Callable[[], list[Effect] | Awaitable[list[Effect] | None] | None]


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        # Initialised here, not in run: the first alert arrives through
        # signal-with-start and its handler runs before run() does.
        self._timeline: list[TimelineEntry]
        self._plan: ResponsePlan | None
        if inp.carried is not None:
            self._state = inp.carried.state
            self._state.runs += 1
            self._timeline = inp.carried.timeline
            self._book = BoundedTimeline(self._timeline)
            self._folded: list[TimelineEntry] = []
            self._plan = inp.carried.plan
            self._seen = SeenAlerts(inp.carried.seen_alerts)
            if self._book.fold_due() and workflow.patched(BOUNDED_TIMELINE_PATCH):
                # Carried over by a run that kept everything.
                self._folded += self._book.fold()
        else:
            alert = inp.first_alert
            self._state = lifecycle.opened(
                inp.incident_id, workflow.info().workflow_id, alert, workflow.now()
            )
            self._timeline = []
            self._book = BoundedTimeline(self._timeline)
            self._folded = []
            self._plan = None
            self._seen = SeenAlerts([])
            self._note(lifecycle.opening_note(alert))
            workflow.metric_meter().create_counter(
                "stanch_incidents_opened", "incidents opened"
            ).add(1, {"severity": str(self._state.severity)})
        self._wake = False
        # The timer of the deadline the run loop waits for, and that deadline.
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None
        self._publish_held = False
        # Alerts held back, how many ever were, and how many this workflow
        # task applied (PACED_ALERTS_PATCH).
        self._held: list[AlertEvent] = []
        self._held_total = 0
        self._paced_task, self._paced_count = 0, 0
        self._keys_wanted = False
        # Nonces of decisions already acted on (workflows/decisions.py).
        self._spent = inp.carried.spent if inp.carried else SpentDecisions()
        self._comms = CommsLink()
        # Temporal's priority key this run's tasks carry (unset: its default, 3).
        self._priority_key = workflow.info().priority.priority_key or DEFAULT_PRIORITY_KEY
        self._raising: asyncio.Task[None] | None = None

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
            await self._take_held_chunk()
            self._follow_severity()
            if self._keys_wanted:
                await self._refresh_decision_keys()
            if not self._held:  # a deadline is judged on every alert that came before it
                await self._act_on_deadlines()
            await self._brief_comms()
        while True:
            await self._take_held_alerts()  # a closed incident still counts them
            await self._brief_comms()
            await self._audit_folded()
            await workflow.wait_condition(self._handlers_finished_or_alerts_held)
            if not self._held:
                return self._state

    def _follow_severity(self) -> None:
        """A more severe alert joined: from now on the incident's timers and
        pages go ahead of less severe incidents' work, as if it had opened at
        this severity. Not awaited: paging never waits for it."""
        wanted = self._state.severity.task_priority
        if wanted >= self._priority_key or not self._listed():
            return
        if not workflow.patched(PRIORITY_FOLLOWS_SEVERITY_PATCH):
            return
        self._priority_key = wanted
        running = [
            view.workflow_id
            for view in (self._state.runbook, self._state.release)
            if view is not None and view.outcome is None
        ]
        change = PriorityChange(
            workflow_id=self._state.workflow_id, priority_key=wanted, runbooks=running
        )
        self._raising = asyncio.create_task(self._raise_priority(change))

    async def _raise_priority(self, change: PriorityChange) -> None:
        try:
            await workflow.execute_activity(
                raise_incident_priority,
                change,
                start_to_close_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=timedelta(minutes=2),
            )
        except ActivityError as e:
            workflow.logger.warning(
                "incident %s keeps task priority %d: %s",
                self._state.incident_id,
                workflow.info().priority.priority_key or DEFAULT_PRIORITY_KEY,
                e.cause or e,
            )

    def _listed(self) -> bool:
        """Started with stanch's search attributes: a server set up for stanch
        (the time-skipping test server has neither them nor priorities)."""
        return workflow.info().typed_search_attributes.get(INCIDENT_STATUS) is not None

    async def _continue_as_new(self, inp: IncidentInput) -> None:
        bounded = False
        while True:
            await self._take_held_alerts()  # applied, never carried
            await workflow.wait_condition(self._handlers_finished_or_alerts_held)
            if self._held:
                continue
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
                seen_alerts=self._seen.keys,
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
        deadline = lifecycle.next_deadline(self._state, self._plan)
        if workflow.patched(STEADY_DEADLINE_TIMER_PATCH):
            await self._until_woken_or(deadline)
            return
        try:
            await workflow.wait_condition(
                lambda: self._wake or workflow.info().is_continue_as_new_suggested(),
                timeout=(max(deadline.at - workflow.now(), timedelta(0)) if deadline else None),
                timeout_summary=deadline.summary if deadline else None,
            )
        except TimeoutError:
            pass
        self._wake = False

    async def _until_woken_or(self, deadline: Deadline | None) -> None:
        """Until something happens or `deadline` comes, on one timer for as
        long as the deadline does not move."""
        at = deadline.at if deadline else None
        if at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = None, at
            if deadline is not None and deadline.at > workflow.now():
                self._timer = asyncio.create_task(
                    workflow.sleep(deadline.at - workflow.now(), summary=deadline.summary)
                )
        if deadline is not None and self._timer is None:
            self._timer_at = None  # due already: acted on at once
            self._wake = False
            return
        timer = self._timer
        await workflow.wait_condition(
            lambda: (
                self._wake
                or workflow.info().is_continue_as_new_suggested()
                or (timer is not None and timer.done())
            )
        )
        if timer is not None and timer.done():
            self._timer, self._timer_at = None, None
        self._wake = False

    async def _brief_comms(self) -> None:
        if workflow.patched(COMMUNICATIONS_PATCH):
            await self._comms.brief(self._state, self._plan)

    async def _act_on_deadlines(self) -> None:
        now = workflow.now()
        deadline = lifecycle.next_deadline(self._state, self._plan)
        if deadline is None or now < deadline.at:
            return
        if deadline.closes:
            await self._close(now)
        elif not self._held_for_maintenance(now):
            # Held: the run loop's next deadline is the window's end.
            await self._escalate(now)

    def _held_for_maintenance(self, now: datetime) -> bool:
        if self._plan is None or not self._plan.maintenance:
            return False
        if not workflow.patched(QUIET_HOURS_PATCH):
            return False
        held = held_for_maintenance(self._state, self._plan, now)
        if held is not None:
            self._note(held)
        return held is not None

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
        self._apply(lifecycle.plan_loaded(self._state, self._plan, workflow.now()))

    # ---- paging and escalation -------------------------------------------

    async def _escalate(self, now: datetime) -> None:
        assert self._plan is not None
        match lifecycle.escalate(self._state.escalation, self._plan.policy, now):
            case PageTier(tier, number, reason):
                await self._page(tier_recipients(self._plan, tier, now), number, reason)
            case StartOver():
                self._wake = True
            case Broadcast(reason):
                await self._page(everyone_in_policy(self._plan, now), 0, reason)
            case Exhausted(note):
                self._note(note)

    async def _page(self, recipients: list[RosterEntry], tier: int, reason: str) -> None:
        assert self._plan is not None
        self._state.escalation.pages_sent += 1
        workflow.metric_meter().create_counter("stanch_pages_sent", "pages sent").add(1)
        who = lifecycle.paged_who(tier)
        self._note(
            lifecycle.paged_note(tier, self._state.escalation.round, names(recipients), reason)
        )
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
            self._note(Note("page_failed", f"Page to {who} failed: {cause}", SYSTEM_ACTOR))
            return
        if result.failed:
            refused = ", ".join(f"{n} ({result.reasons.get(n, 'refused')})" for n in result.failed)
            self._note(Note("page_failed", f"Channels refused the page: {refused}", SYSTEM_ACTOR))

    # ---- alerts -----------------------------------------------------------

    @workflow.signal(name=IncidentSignal.ADD_ALERT)
    def add_alert(self, alert: AlertEvent) -> None:
        # One alert per signal: older gateways, and incidents already running.
        self._arrive([alert])

    @workflow.signal(name=IncidentSignal.ADD_ALERTS)
    def add_alerts(self, batch: AlertBatch) -> None:
        self._arrive(batch.alerts)

    def _arrive(self, alerts: list[AlertEvent]) -> None:
        if workflow.patched(PACED_ALERTS_PATCH) and not self._room_for(len(alerts)):
            self._held += alerts  # for the run loop (_take_held_chunk)
            self._held_total += len(alerts)
            self._wake = True
            return
        self._apply_batch(alerts)

    def _apply_batch(self, alerts: list[AlertEvent]) -> None:
        # The gateway coalesces a fingerprint's alerts under load; applying
        # them in order through the same path keeps dedup, counts, severity and
        # reopening exactly as if they had arrived one signal each.
        hold = len(alerts) > 1 and workflow.patched(PUBLISH_PER_BATCH_PATCH)
        self._publish_held = hold
        try:
            for alert in alerts:
                self._apply_alert(alert)
        finally:
            self._publish_held = False
        if hold:
            self._publish(Publish.of(self._state))

    def _room_for(self, alerts: int) -> bool:
        """Whether `alerts` more fit in this workflow task (PACED_ALERTS_PATCH),
        counting them if so. Later alerts never overtake held ones."""
        if self._held or self._paced_so_far() + alerts > ALERTS_PER_TASK:
            return False
        self._paced_count += alerts
        return True

    def _paced_so_far(self) -> int:
        """Alerts applied in this workflow task. A task is known by its
        started event's id (the history length it began at): the same for all
        of its jobs, and on replay."""
        task = workflow.info().get_current_history_length()
        if task != self._paced_task:
            self._paced_task, self._paced_count = task, 0
        return self._paced_count

    async def _take_held_chunk(self) -> None:
        """Applies what this workflow task has room for of the held alerts, in
        arrival order; the rest wait for a timer that ends the task."""
        if not self._held:
            return
        taken = self._held[: max(ALERTS_PER_TASK - self._paced_so_far(), 0)]
        if taken:
            del self._held[: len(taken)]
            self._paced_count += len(taken)
            self._apply_batch(taken)
        if self._held:
            await workflow.sleep(PACE, summary=f"{len(self._held):,} held alerts")
            self._wake = True

    async def _take_held_alerts(self) -> None:
        while self._held:
            await self._take_held_chunk()

    def _handlers_finished_or_alerts_held(self) -> bool:
        return workflow.all_handlers_finished() or bool(self._held)

    async def _after_held_alerts(self) -> None:
        """A person's request waits for the alerts held when it came: they
        arrived first and count first, as they did before alerts were paced
        (a resolve must not be undone by the pile it came after)."""
        came_after = self._held_total
        if self._held:
            await workflow.wait_condition(lambda: self._held_total - len(self._held) >= came_after)

    def _apply_alert(self, alert: AlertEvent) -> None:
        if self._seen.first_time(self._seen_key(alert)):
            if is_grouped(self._state.incident_id) and workflow.patched(GROUPED_PARTS_PATCH):
                self._apply(grouping.related_alert_arrived(self._state, alert, workflow.now()))
                return
            self._apply(lifecycle.alert_arrived(self._state, alert, workflow.now()))

    def _seen_key(self, alert: AlertEvent) -> str:
        key = alert.dedup_key
        if not lifecycle.is_long_key(key) or not workflow.patched(BOUNDED_TIMELINE_PATCH):
            return key
        return lifecycle.hashed_key(key)

    # ---- remediation ------------------------------------------------------

    async def _start_remediation(self) -> None:
        assert self._plan is not None and self._plan.runbook is not None
        choice = self._plan.runbook
        if not self._state.status.is_open or not self._state.resources:
            return
        self._state.runbook = await self._start_runbook(
            choice.name, choice.params, choice.dry_run, SYSTEM_ACTOR
        )

    async def _start_runbook(
        self, name: str, params: dict[str, Any], dry_run: bool, requested_by: str
    ) -> RunbookView:
        assert self._plan is not None and self._plan.approval is not None
        state = self._state
        child_id = lifecycle.runbook_child_id(state, name, self._book.noted)
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
                dimensions=state.dimensions,
                title=state.title,
                severity=state.severity,
                status=state.status,
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
        self._note(lifecycle.runbook_started(name, dry_run, requested_by))
        return view

    @workflow.signal(name=IncidentSignal.RUNBOOK_EVENT)
    def runbook_event(self, event: RunbookEvent) -> None:
        self._apply(lifecycle.runbook_reported(self._state, event))

    @workflow.signal(name=IncidentSignal.RUNBOOK_EVENTS)
    def runbook_events(self, events: list[RunbookEvent]) -> None:
        """A runbook's reports gathered while the one before was on its way
        (workflows/runbook/_kit.py): one workflow task for them all."""
        for event in events:
            self._apply(lifecycle.runbook_reported(self._state, event))

    @workflow.signal(name=CommsName.TIMELINE)
    def comms_event(self, event: CommsEvent) -> None:
        self._note(Note(event.kind, event.summary, event.actor))

    @workflow.signal(name=IncidentSignal.ACCESS_EVENT)
    def access_event(self, event: AccessEvent) -> None:
        for note in access_reported(self._state, event):
            self._note(note)

    @workflow.update(name=IncidentUpdate.REQUEST_RELEASE)
    async def request_release(self, request: RequestRelease) -> UpdateResult:
        async def release() -> list[Effect]:
            done = self._state.runbook_result
            self._state.release = await self._start_runbook(
                RELEASE_RUNBOOK,
                {
                    "runbook": done.runbook if done else "",
                    "applied": [u.model_dump(mode="json") for u in (done.applied if done else [])],
                },
                False,
                request.by,
            )
            return lifecycle.release_requested(self._plan, request.by, request.reason)

        return await self._act_for(request, "request release", {"reason": request.reason}, release)

    @request_release.validator
    def _validate_request_release(self, request: RequestRelease) -> None:
        self._check_decision(IncidentUpdate.REQUEST_RELEASE, request)
        _refuse(lifecycle.release_refusal(self._state))

    # ---- people -----------------------------------------------------------

    @workflow.update(name=IncidentUpdate.ACKNOWLEDGE)
    async def acknowledge(self, request: Acknowledge) -> UpdateResult:
        return await self._act_for(
            request,
            "acknowledge",
            {"note": request.note},
            lambda: lifecycle.acknowledge(
                self._state, self._plan, workflow.now(), request.by, request.note
            ),
        )

    @acknowledge.validator
    def _validate_acknowledge(self, request: Acknowledge) -> None:
        self._check_decision(IncidentUpdate.ACKNOWLEDGE, request)
        _refuse(lifecycle.acknowledge_refusal(self._state))

    @workflow.update(name=IncidentUpdate.RESOLVE)
    async def resolve(self, request: Resolve) -> UpdateResult:
        return await self._act_for(
            request,
            "resolve",
            {"note": request.note},
            lambda: lifecycle.resolve(
                self._state, self._plan, workflow.now(), request.by, request.note
            ),
        )

    @resolve.validator
    def _validate_resolve(self, request: Resolve) -> None:
        self._check_decision(IncidentUpdate.RESOLVE, request)

    @workflow.update(name=IncidentUpdate.ASSIGN_ROLE)
    async def assign_role(self, request: AssignRole) -> UpdateResult:
        return await self._act_for(
            request,
            "assign role",
            {"role": str(request.role), "assignee": request.assignee},
            lambda: lifecycle.assign_role(
                self._state, self._plan, request.role, request.assignee, request.by
            ),
            also_on_roster=request.assignee,
        )

    @assign_role.validator
    def _validate_assign_role(self, request: AssignRole) -> None:
        self._check_decision(IncidentUpdate.ASSIGN_ROLE, request)
        if self._plan is not None and not self._plan.on_roster(request.assignee):
            raise refused(f"assignee {request.assignee!r} is not on the roster")

    @workflow.update(name=IncidentUpdate.ADD_NOTE)
    async def add_note(self, request: AddNote) -> UpdateResult:
        return await self._act_for(
            request,
            "note",
            {"text": request.text},
            lambda: lifecycle.add_note(request.text, request.by),
        )

    @add_note.validator
    def _validate_add_note(self, request: AddNote) -> None:
        self._check_decision(IncidentUpdate.ADD_NOTE, request)

    @workflow.update(name=IncidentUpdate.CHANGE_STATUS)
    async def change_status(self, request: ChangeStatus) -> UpdateResult:
        return await self._act_for(
            request,
            f"mark {request.status}",
            {"note": request.note},
            lambda: lifecycle.change_status(
                self._state, self._plan, workflow.now(), request.status, request.by, request.note
            ),
        )

    @change_status.validator
    def _validate_change_status(self, request: ChangeStatus) -> None:
        self._check_decision(IncidentUpdate.CHANGE_STATUS, request)
        _refuse(lifecycle.status_change_refusal(self._state, request.status))

    async def _act_for(
        self,
        request: PersonRequest,
        action: str,
        details: dict[str, Any],
        change: Change,
        *,
        also_on_roster: str | None = None,
    ) -> UpdateResult:
        """Every person's request takes the same path: its proof is spent, the
        people it names are checked against the roster (once it is loaded),
        the change is made and, if anything changed, put on the audit trail;
        the answer says where the incident stands."""
        spend_once(self._spent, request)
        await self._require_on_roster(request.by)
        if also_on_roster is not None:
            await self._require_on_roster(also_on_roster)
        await self._after_held_alerts()
        made = change()
        effects = await made if inspect.isawaitable(made) else made
        if effects is None:
            return self._result(False)
        self._apply(effects)
        await self._audit(request.by, action, details)
        return self._result(True)

    def _check_decision(self, action: IncidentUpdate, request: PersonRequest) -> None:
        """A person's request counts only as the gateway signed it, for this
        incident and action, with a credential of at least responder."""
        self._check_actor(request.by)
        keys = self._plan.approval.decision_keys if self._plan and self._plan.approval else {}
        _refuse(
            unproven(
                request, action=action, keys=keys, spent=self._spent, minimum=ApiRole.RESPONDER
            )
        )

    @workflow.signal(name=IncidentSignal.REFRESH_DECISION_KEYS)
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
            raise refused(f"{person!r} is not on the roster")
        if self._state.status is IncidentStatus.CLOSED:
            raise refused("incident is closed")
        if self._continue_as_new_starved():
            raise refused(
                "incident is moving to a new run: send it again in a moment", for_now=True
            )

    async def _require_on_roster(self, person: str) -> None:
        await workflow.wait_condition(lambda: self._plan is not None)
        assert self._plan is not None
        if not self._plan.on_roster(person):
            raise ApplicationError(f"{person!r} is not on the roster", type="NotOnRoster")

    # ---- closing ------------------------------------------------------------

    async def _close(self, now: datetime) -> None:
        for view in (self._state.runbook, self._state.release):
            if view is not None and view.outcome is None:
                # Nothing left to remediate: stop waiting for approvals.
                await workflow.get_external_workflow_handle(view.workflow_id).cancel()
        if grants_to_end(self._state) and workflow.patched(END_ACCESS_ON_CLOSE_PATCH):
            for grant in grants_to_end(self._state):
                try:
                    await workflow.get_external_workflow_handle(grant.workflow_id).signal(
                        INCIDENT_CLOSED
                    )
                except ApplicationError:
                    pass  # it ended meanwhile: nothing left to revoke
        effects = lifecycle.closed(self._state, now)
        # Open incidents = opened - closed (both counters), by severity.
        workflow.metric_meter().create_counter("stanch_incidents_closed", "incidents closed").add(
            1, {"severity": str(self._state.severity)}
        )
        self._apply(effects)
        if workflow.patched(POSTMORTEM_PATCH):
            draft = await workflow.execute_activity_method(
                PostmortemActivities.draft_postmortem,
                PostmortemRequest(state=self._state, timeline=self._timeline),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=PLAN_RETRY,
            )
            self._note(
                Note("postmortem_drafted", f"Postmortem draft: {draft.location}", SYSTEM_ACTOR)
            )

    # ---- queries --------------------------------------------------------------

    @workflow.query(name=IncidentQuery.STATE)
    def state(self) -> IncidentView:
        return IncidentView(state=self._state, plan_loaded=self._plan is not None)

    @workflow.query(name=IncidentQuery.TIMELINE)
    def timeline(self) -> list[TimelineEntry]:
        return self._timeline

    # ---- applying what the lifecycle decided ------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        """In order: a publish is a command, and recorded incidents replay only
        if it comes where it came."""
        for effect in effects:
            match effect:
                case Note():
                    self._note(effect)
                case AlertRepeated(at):
                    if not lifecycle.counted_as_repeat(self._timeline, at):
                        self._note(lifecycle.REPEATED)
                case Publish():
                    self._publish(effect)
                case Wake():
                    self._wake = True
                case Measure(metric, description, elapsed, severity):
                    workflow.metric_meter().create_histogram_timedelta(metric, description).record(
                        elapsed, {"severity": str(severity)}
                    )
        if self._comms.due(self._state, workflow.patched(COMMUNICATIONS_PATCH)):
            self._wake = True  # the run loop briefs the communications workflow

    def _note(self, note: Note) -> None:
        fold_due = self._book.add(entry(workflow.now(), note.kind, note.summary, note.actor))
        if fold_due and workflow.patched(BOUNDED_TIMELINE_PATCH):
            self._folded += self._book.fold()
            self._wake = True  # the run loop writes them to the audit trail

    async def _audit_folded(self) -> None:
        """Entries folded out of the timeline, whole, on the audit trail."""
        folded, self._folded = self._folded, []
        for batch in audit_batches(folded, FOLDED_AUDIT_BYTES):
            await self._audit(
                SYSTEM_ACTOR,
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

    def _result(self, changed: bool) -> UpdateResult:
        return UpdateResult(
            incident_id=self._state.incident_id, status=self._state.status, changed=changed
        )

    def _publish(self, wanted_state: Publish) -> None:
        """Keep the listing's search attributes in step with the state.

        Only when the starter set them: a namespace without stanch's search
        attributes registered (the time-skipping test server, a cluster whose
        operator has not run the setup yet) would fail every workflow task."""
        if self._publish_held:
            return  # the batch publishes once, when it is all applied
        if not self._listed():
            return
        current = workflow.info().typed_search_attributes
        wanted: list[SearchAttributeUpdate[Any]] = [
            INCIDENT_STATUS.value_set(str(wanted_state.status)),
            INCIDENT_SEVERITY.value_set(str(wanted_state.severity)),
            INCIDENT_RESOURCES.value_set(searchable_resources(self._state.resources)),
        ]
        if self._state.service:
            wanted.append(INCIDENT_SERVICE.value_set(self._state.service))
        changes = [u for u in wanted if current.get(u.key) != u.value]
        if changes:
            workflow.upsert_search_attributes(changes)


def _refuse(reason: str | None) -> None:
    """A validator's refusal: the caller gets the reason, nothing enters history."""
    if reason:
        raise refused(reason)
