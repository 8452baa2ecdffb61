"""CommunicationsWorkflow: what stakeholders hear about one incident.

One per incident (`incident-<id>/comms`), started by the incident (through
an activity: signal-with-start) and told where it stands (a `Briefing`)
whenever its status, severity, title or communications lead changes
(CommsLink, below, is all the incident holds).
It keeps the incident's status updates and the people subscribed to it, and:

- a person the policy allows (the incident's communications lead, a holder of
  a lead role, a listed poster) posts an update: a stakeholder-safe text and
  an internal note; both go on the incident's timeline, the text alone to
  subscribers;
- a status change posts an update of its own unless the policy turns that off;
- each update goes to every subscriber (of this incident, of its service or
  severity, the policy's stakeholder groups) once, by one activity per
  subscriber keyed by update and subscriber;
- when no update was posted within the policy's interval for the severity,
  a durable timer pages the communications lead (and again each interval).

It ends once the incident has closed and the closing update is delivered.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import cryptography.exceptions  # noqa: F401  (see workflows/incident.py)

    from stanch.activities.communications import CommunicationsActivities
    from stanch.models.communications import CommsName, Subscriber
    from stanch.models.config import ApiRole
    from stanch.models.decision import NO_KEYS_YET, PersonRequest, SpentDecisions
    from stanch.models.incident import IncidentState, Page, ResponsePlan, Role
    from stanch.models.status import IncidentStatus
    from stanch.models.status_updates import (
        COMMUNICATIONS_WORKFLOW,
        SUBSCRIBERS_KEPT,
        UPDATES_KEPT,
        AudienceRequest,
        Briefing,
        CarriedComms,
        CommsEvent,
        CommsInput,
        CommsPlan,
        CommsPlanRequest,
        CommsView,
        Delivery,
        PostUpdate,
        StatusUpdate,
        Subscribe,
        UpdateKind,
    )
    from stanch.workflows.paging import page_on_call
    from stanch.workflows.refusal import refused
    from stanch.workflows.signed_requests import spend_once, unproven

SYSTEM = "stanch"
PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1)
)
# How long one update keeps trying to reach one subscriber before it is
# reported as failed on the timeline.
DELIVERY_WINDOW = timedelta(minutes=30)
DELIVERY_HEARTBEAT = timedelta(seconds=5)
PAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30)
)
STATUS_WORDS = {
    IncidentStatus.TRIGGERED: "We are investigating an incident",
    IncidentStatus.ACKNOWLEDGED: "Responders are working on the incident",
    IncidentStatus.CONTAINED: "The incident is contained",
    IncidentStatus.MITIGATED: "The impact is mitigated; we are monitoring",
    IncidentStatus.RESOLVED: "The incident is resolved",
    IncidentStatus.CLOSED: "The incident is closed",
}


@workflow.defn(name=COMMUNICATIONS_WORKFLOW)
class CommunicationsWorkflow:
    @workflow.init
    def __init__(self, inp: CommsInput) -> None:
        carried = inp.carried
        self._incident_id = inp.incident_id
        self._incident_workflow_id = inp.incident_workflow_id
        self._briefing = carried.briefing if carried else inp.briefing
        self._announced: IncidentStatus | None = carried.announced if carried else None
        self._updates: list[StatusUpdate] = carried.updates if carried else []
        self._numbered = carried.numbered if carried else 0
        self._subscribers: list[Subscriber] = carried.subscribers if carried else []
        self._last_update_at: datetime = carried.last_update_at if carried else workflow.now()
        self._reminded_at: datetime | None = carried.reminded_at if carried else None
        self._spent = carried.spent if carried else SpentDecisions()
        self._plan: CommsPlan | None = None
        self._outbox: list[StatusUpdate] = []  # accepted, not yet delivered
        self._events: list[CommsEvent] = []  # for the incident's timeline
        self._plan_wanted = False
        self._wake = False
        # The ids of updates: unique to this incident's run chain, since a
        # later incident with the same fingerprint has the same incident id.
        self._prefix = f"{inp.incident_id}.{workflow.info().first_execution_run_id[:8]}"

    @workflow.run
    async def run(self, inp: CommsInput) -> CommsView:
        await self._load_plan()
        while True:
            self._announce_status()
            await self._tell_incident()
            await self._deliver_outbox()
            if self._briefing.status is IncidentStatus.CLOSED and not self._outbox:
                break
            if workflow.info().is_continue_as_new_suggested() and not self._outbox:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._outbox and not self._events:
                    workflow.continue_as_new(self._carried(inp))
                continue
            await self._wait()
            if self._plan_wanted:
                self._plan_wanted = False
                await self._load_plan()
            if self._reminder_due():
                await self._remind()
        await self._tell_incident()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    def _carried(self, inp: CommsInput) -> CommsInput:
        return CommsInput(
            incident_id=inp.incident_id,
            incident_workflow_id=inp.incident_workflow_id,
            briefing=self._briefing,
            carried=CarriedComms(
                briefing=self._briefing,
                announced=self._announced,
                updates=self._updates,
                numbered=self._numbered,
                subscribers=self._subscribers,
                last_update_at=self._last_update_at,
                reminded_at=self._reminded_at,
                spent=self._spent,
            ),
        )

    async def _load_plan(self) -> None:
        self._plan = await workflow.execute_activity_method(
            CommunicationsActivities.load_comms_plan,
            CommsPlanRequest(service=self._briefing.service),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=PLAN_RETRY,
        )

    # ---- waiting and reminding ------------------------------------------------

    def next_reminder_at(self) -> datetime | None:
        """No update posted for the severity's interval: remind, then again
        each interval until one is. Only while the incident is open."""
        if self._plan is None or not self._briefing.status.is_open:
            return None
        every = self._plan.reminders.get(self._briefing.severity)
        if every is None:
            return None
        since = max(self._last_update_at, self._reminded_at or self._last_update_at)
        return since + every

    def _reminder_due(self) -> bool:
        at = self.next_reminder_at()
        return at is not None and workflow.now() >= at

    async def _wait(self) -> None:
        at = self.next_reminder_at()
        timeout = None if at is None else max(at - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(
                lambda: self._wake or workflow.info().is_continue_as_new_suggested(),
                timeout=timeout,
                timeout_summary="status update reminder" if timeout is not None else None,
            )
        except TimeoutError:
            pass
        self._wake = False

    async def _remind(self) -> None:
        assert self._plan is not None
        now = workflow.now()
        self._reminded_at = now
        leads = self._plan.leads(self._briefing.lead)
        quiet = now - self._last_update_at
        minutes = int(quiet.total_seconds() // 60)
        reason = f"no status update for {minutes}m: post one (stanch update {self._incident_id})"
        if not leads:
            self._event(
                "comms_reminder",
                f"Status update overdue ({minutes}m); no communications lead to page",
            )
            return
        brief = self._briefing
        page = Page(
            incident_id=self._incident_id,
            workflow_id=self._incident_workflow_id,
            title=brief.title,
            severity=brief.severity,
            status=brief.status,
            service=brief.service,
            resources=[],
            recipients=leads,
            tier=0,
            round=0,
            channels=self._plan.channels,
            reason=reason,
        )
        who = ", ".join(p.name for p in leads)
        try:
            await page_on_call(page, PAGE_RETRY, "remind the communications lead")
        except ActivityError as e:
            cause = e.cause.message if isinstance(e.cause, ApplicationError) else str(e.cause)
            self._event("comms_reminder", f"Reminder to {who} failed: {cause}")
            return
        self._event("comms_reminder", f"No status update for {minutes}m: paged {who}")

    # ---- updates ------------------------------------------------------------------

    def _announce_status(self) -> None:
        status = self._briefing.status
        if status == self._announced:
            return
        self._announced = status
        if self._plan is None or not self._plan.automatic_updates:
            return
        words = (
            STATUS_WORDS[status]
            if status is not IncidentStatus.TRIGGERED or self._numbered == 0
            else "The incident has started again"
        )
        self._add_update(UpdateKind.STATUS, f"{words}: {self._briefing.title}", SYSTEM, None)

    def _add_update(
        self, kind: UpdateKind, text: str, by: str, internal: str | None
    ) -> StatusUpdate:
        self._numbered += 1
        update = StatusUpdate(
            id=f"{self._prefix}.{self._numbered}",
            number=self._numbered,
            at=workflow.now(),
            kind=kind,
            status=self._briefing.status,
            text=text,
            by=by,
            internal=internal,
        )
        self._updates.append(update)
        del self._updates[:-UPDATES_KEPT]
        self._outbox.append(update)
        self._wake = True
        return update

    @property
    def _thread(self) -> str:
        return f"{self._prefix}.1"

    async def _deliver_outbox(self) -> None:
        while self._outbox:
            update = self._outbox[0]
            await self._deliver(update)
            self._outbox.pop(0)

    async def _deliver(self, update: StatusUpdate) -> None:
        brief = self._briefing
        audience = await workflow.execute_activity_method(
            CommunicationsActivities.find_audience,
            AudienceRequest(
                incident_id=self._incident_id, service=brief.service, severity=brief.severity
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=PLAN_RETRY,
        )
        everyone = {s.id: s for s in [*self._subscribers, *audience.subscribers]}
        public = update.public
        sends = [
            workflow.execute_activity_method(
                CommunicationsActivities.deliver_update,
                Delivery(
                    incident_id=self._incident_id,
                    update=public,
                    briefing=brief,
                    subscriber=subscriber,
                    thread=self._thread,
                ),
                start_to_close_timeout=timedelta(seconds=45),
                # It beats while it sends: a worker lost mid-send is noticed in
                # seconds and the delivery retried elsewhere.
                heartbeat_timeout=DELIVERY_HEARTBEAT,
                schedule_to_close_timeout=DELIVERY_WINDOW,
                retry_policy=DELIVERY_RETRY,
                summary=f"update {update.number} to {subscriber.shown}",
            )
            for subscriber in everyone.values()
        ]
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        failed: list[str] = []
        for subscriber, outcome in zip(everyone.values(), outcomes, strict=True):
            if isinstance(outcome, ActivityError):
                cause = outcome.cause
                why = cause.message if isinstance(cause, ApplicationError) else str(cause)
                failed.append(f"{subscriber.shown}: {why}")
            elif isinstance(outcome, BaseException):
                raise outcome
        update.delivered = len(everyone) - len(failed)
        update.failed = failed
        if failed:
            self._event(
                "status_update_failed", f"Update {update.number} did not reach {'; '.join(failed)}"
            )

    # ---- the incident's timeline -----------------------------------------------

    def _event(self, kind: str, summary: str, actor: str | None = SYSTEM) -> None:
        self._events.append(CommsEvent(kind=kind, summary=summary, actor=actor))

    async def _tell_incident(self) -> None:
        events, self._events = self._events, []
        if not events:
            return
        handle = workflow.get_external_workflow_handle(self._incident_workflow_id)
        for event in events:
            try:
                await handle.signal(CommsName.TIMELINE, event)
            except ApplicationError:
                return  # the incident has ended: its timeline is final

    # ---- people ---------------------------------------------------------------------

    @workflow.update(name=CommsName.POST_UPDATE)
    async def post_update(self, request: PostUpdate) -> StatusUpdate:
        spend_once(self._spent, request)
        update = self._add_update(UpdateKind.POSTED, request.text, request.by, request.internal)
        self._last_update_at = update.at
        internal = f" (internal: {request.internal})" if request.internal else ""
        self._event(
            "status_update", f"Status update {update.number}: {request.text}{internal}", request.by
        )
        return update.public

    @post_update.validator
    def _validate_post_update(self, request: PostUpdate) -> None:
        self._check(CommsName.POST_UPDATE, request, ApiRole.RESPONDER)
        assert self._plan is not None
        if not self._plan.may_post(request.by, self._briefing.lead):
            raise refused(
                f"{request.by} may not post status updates: the communications lead, "
                f"holders of {', '.join(self._plan.lead_roles) or 'a lead role'} and "
                "communications.posters may"
            )

    @workflow.update(name=CommsName.SUBSCRIBE)
    async def subscribe(self, request: Subscribe) -> CommsView:
        spend_once(self._spent, request)
        subscriber = Subscriber.parse(request.channel)
        if all(s.id != subscriber.id for s in self._subscribers):
            self._subscribers.append(subscriber)
            self._event("subscribed", f"{subscriber.shown} subscribed to updates", request.by)
            self._wake = True
        return self.view()

    @subscribe.validator
    def _validate_subscribe(self, request: Subscribe) -> None:
        self._check(CommsName.SUBSCRIBE, request, ApiRole.VIEWER)
        assert self._plan is not None
        if not self._plan.may_add_subscriber(request.by):
            raise refused(f"{request.by} may not add subscribers (communications.may_subscribe)")
        if len(self._subscribers) >= SUBSCRIBERS_KEPT:
            raise refused(f"this incident has {SUBSCRIBERS_KEPT} subscribers already")

    def _check(self, action: CommsName, request: PersonRequest, minimum: ApiRole) -> None:
        if self._briefing.status is IncidentStatus.CLOSED:
            raise refused("incident is closed")
        if self._plan is None:
            raise refused(f"{NO_KEYS_YET}: retry in a moment")
        if self._plan.person(request.by) is None:
            raise refused(f"{request.by!r} is not on the roster")
        refusal = unproven(
            request,
            action=action,
            keys=self._plan.decision_keys,
            spent=self._spent,
            minimum=minimum,
        )
        if refusal:
            raise refused(refusal)

    @workflow.signal(name=CommsName.REFRESH_PLAN)
    def refresh_plan(self) -> None:
        """Harmless from anyone: the plan comes from the policy file."""
        self._plan_wanted = True
        self._wake = True

    # ---- the incident --------------------------------------------------------------

    @workflow.signal(name=CommsName.BRIEF)
    def brief(self, briefing: Briefing) -> None:
        if briefing != self._briefing:
            self._briefing = briefing
            self._wake = True

    @workflow.query(name=CommsName.VIEW)
    def view(self) -> CommsView:
        return CommsView(
            incident_id=self._incident_id,
            updates=[u.public for u in reversed(self._updates)],
            subscribers=[s.shown for s in self._subscribers],
            lead=self._briefing.lead,
            next_reminder_at=self.next_reminder_at(),
            ready=self._plan is not None,
        )


def briefing_of(state: IncidentState) -> Briefing:
    return Briefing(
        title=state.title,
        severity=state.severity,
        status=state.status,
        service=state.service,
        lead=state.roles.get(Role.COMMUNICATIONS_LEAD),
    )


class CommsLink:
    """All an incident holds of its communications workflow: the briefing it
    gave last. Each new one goes by an activity that signals the
    communications workflow, starting it first if need be (signal-with-start:
    no child of the incident, so it outlives any of the incident's runs).
    Not carried over a continue-as-new: the next run briefs it again, which
    it takes as no change."""

    def __init__(self) -> None:
        self._told: Briefing | None = None

    def due(self, state: IncidentState, patched: bool) -> bool:
        """Whether the incident has news for it (the run loop then calls
        `brief`). Cheap: it is asked after every alert of a storm."""
        told = self._told
        return patched and (
            told is None
            or told.status is not state.status
            or told.severity is not state.severity
            or told.title != state.title
            or told.service != state.service
            or told.lead != state.roles.get(Role.COMMUNICATIONS_LEAD)
        )

    async def brief(self, state: IncidentState, plan: ResponsePlan | None) -> None:
        if plan is None:
            return  # the service is not known yet
        briefing = briefing_of(state)
        if briefing == self._told:
            return
        try:
            await workflow.execute_activity_method(
                CommunicationsActivities.brief_communications,
                CommsInput(
                    incident_id=state.incident_id,
                    incident_workflow_id=state.workflow_id,
                    briefing=briefing,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                # Bounded: the incident's run loop (paging) must not wait on it.
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=PLAN_RETRY,
                summary="brief communications",
            )
        except ActivityError as e:
            workflow.logger.warning("communications not briefed, will try again: %s", e.cause)
            return
        self._told = briefing
