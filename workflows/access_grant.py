"""AccessGrantWorkflow: emergency access for a guest, approved and time-boxed.

One durable workflow per grant (`<incident>/access-<grant>`, started by the
client room for a person's signed request). It is a runbook of the kit, so the
approval gate is the runbooks' own (tiers, pages, signed decisions checked in
validators, four eyes at high risk) and the grant itself is an `act` (checked
against remediation.scopes and the kill switch, on the timeline and in the
audit trail):

1. read the worker's policy: may this guest have this role for this long,
   who approves (never from whoever started the workflow);
2. check the request is a person's, signed by the gateway;
3. wait for approval on gate `access-<grant>` (medium risk for readers, high,
   i.e. never the requester, for anything that can change);
4. create the role assignment (named after the incident and the grant);
5. hold it until it expires, someone revokes it or the incident closes,
   whichever comes first: a durable timer, so restarts change nothing;
6. revoke it, retrying with backoff for as long as it takes and paging the
   on-call after every failed round.

Reports go to the incident as access events (its timeline and the grants on
its page), never as runbook events: a grant is not the incident's remediation.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.access import AccessActivities, AccessPlanActivities
    from stanch.models.access_grant import (
        ACCESS_GRANT,
        GATE_PREFIX,
        INCIDENT_CLOSED,
        REQUEST_ACCESS,
        REVOKE_ACCESS,
        AccessEvent,
        AccessGrantInput,
        AccessGrantView,
        AccessPlan,
        AccessPlanRequest,
        GrantAccessRequest,
        GrantStatus,
        RevokeAccess,
        RevokeAccessRequest,
        assignment_name,
    )
    from stanch.models.config import ApiRole
    from stanch.models.duration import format_duration
    from stanch.models.incident import Page, RosterEntry
    from stanch.models.messages import IncidentSignal
    from stanch.models.risk import Risk
    from stanch.models.runbook import (
        ApprovalDecision,
        RunbookOutcome,
        RunbookResult,
        RunbookSpec,
        StepStatus,
    )
    from stanch.workflows.decisions import spend
    from stanch.workflows.paging import page_on_call
    from stanch.workflows.refusal import refused
    from stanch.workflows.runbook import (
        BOOKKEEPING,
        ApprovalDenied,
        RemediationRefused,
        Runbook,
    )
    from stanch.workflows.signed_requests import unproven

# One quick retry inside a round; the rounds themselves never stop.
REVOKE_ROUND = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=2,
)
REVOKE_FIRST_WAIT = timedelta(seconds=30)
REVOKE_LONGEST_WAIT = timedelta(minutes=15)
SYSTEM = "stanch"


@workflow.defn(name=ACCESS_GRANT)
class AccessGrantWorkflow(Runbook):
    spec = RunbookSpec(
        name=ACCESS_GRANT,
        description="Grant a guest an Azure role on one scope for a bounded time, once "
        "approved; revoke it at expiry, on request or when the incident closes.",
        risk=Risk.HIGH,
        author="stanch",
        outcome=RunbookOutcome.RELEASED,
    )

    @workflow.init
    def __init__(self, inp: AccessGrantInput) -> None:
        super().__init__(inp)
        self._grant_input = inp
        request = inp.request
        # One gate per grant, named after it, so a decision can only ever be
        # for this grant; high risk until the policy says otherwise.
        self.spec = self.spec.model_copy(  # type: ignore[misc]  # this run's own gate
            update={"approvals": {f"{GATE_PREFIX}{inp.grant_id}": Risk.HIGH}}
        )
        self._plan: AccessPlan | None = None
        self._grant = AccessGrantView(
            grant_id=inp.grant_id,
            workflow_id=workflow.info().workflow_id,
            guest=request.guest,
            role=request.role,
            scope=request.scope,
            duration=request.duration,
            requested_by=request.by,
            requested_at=workflow.now(),
        )
        self._end_reason: str | None = None  # why the grant ends before its expiry
        self._ended_by = SYSTEM
        self._incident_gone = False

    @workflow.run
    async def run(self, inp: AccessGrantInput) -> RunbookResult:
        return await self.perform()

    @property
    def gate(self) -> str:
        return f"{GATE_PREFIX}{self._grant_input.grant_id}"

    # ---- the procedure --------------------------------------------------------

    async def procedure(self) -> RunbookOutcome | None:
        await self._read_policy()
        request = self._grant_input.request
        assert self._plan is not None
        guest = self._plan.guest
        await self._tell(
            "requested",
            f"{request.by} asks that {self._grant.guest} ({self._grant.organisation or '?'}) "
            f"be granted {request.role} on {request.scope} for "
            f"{format_duration(request.duration)}"
            + (f": {request.reason}" if request.reason else ""),
        )
        if self._incident_gone:
            self._refused("the incident is closed: nothing is granted for it any more")
        if reason := self._unproven_request():
            self._refused(reason)
        if self._plan.refusal:
            self._refused(self._plan.refusal)
        assert guest is not None
        try:
            await self.approval(self.gate)
        except ApprovalDenied:
            self._grant.status = GrantStatus.DENIED
            self._grant.detail = self._end_reason or "not approved"
            raise
        self._grant.approved_by = list(self._gate.on(self.gate).approvals)
        if self._end_reason is not None:  # ended after the approval, before the grant
            self._grant.status = GrantStatus.DENIED
            raise ApprovalDenied(self._end_reason)
        try:
            made = await self.act(
                f"grant {request.role} to {guest.id} on {request.scope}",
                AccessActivities.grant_access,
                GrantAccessRequest(
                    scope=request.scope,
                    assignment_name=assignment_name(self.incident_id, self._grant_input.grant_id),
                    role=request.role,
                    principal_id=guest.principal_id,
                    principal_type=guest.principal_type,
                    description=f"stanch emergency access for incident {self.incident_id} "
                    f"(grant {self._grant_input.grant_id}), requested by {request.by}",
                ),
            )
        except RemediationRefused as e:
            self._grant.status, self._grant.detail = GrantStatus.REFUSED, str(e)
            raise
        except ActivityError:
            self._grant.status = GrantStatus.FAILED
            raise
        assert made is not None  # never a dry run
        now = workflow.now()
        self._grant.status = GrantStatus.ACTIVE
        self._grant.assignment_id = made.assignment_id
        self._grant.granted_at = now
        self._grant.expires_at = now + request.duration
        await self._tell(
            "granted",
            f"{guest.id} holds {request.role} on {request.scope} until "
            f"{self._grant.expires_at:%Y-%m-%d %H:%M:%S}Z",
        )
        because = await self._hold()
        await self._revoke(because)
        return RunbookOutcome.RELEASED

    async def _read_policy(self) -> None:
        request = self._grant_input.request
        self._plan = plan = await workflow.execute_activity_method(
            AccessPlanActivities.load_access_plan,
            AccessPlanRequest(
                guest=request.guest,
                role=request.role,
                duration=request.duration,
                service=self._grant_input.service,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING,
        )
        self._inp = self._inp.model_copy(
            update={"approval": plan.approval, "requested_by": request.by}
        )
        self._keys = dict(plan.approval.decision_keys)
        self.spec = self.spec.model_copy(  # type: ignore[misc]
            update={"approvals": {self.gate: plan.risk}}
        )
        self._grant.risk = plan.risk
        if plan.guest is not None:
            self._grant.guest = plan.guest.id
            self._grant.principal_id = plan.guest.principal_id
            self._grant.organisation = plan.guest.organisation
            self._grant.support = plan.guest.support

    def _unproven_request(self) -> str | None:
        """The request must be a roster person's, signed by the gateway for
        this grant: a client that reaches Temporal directly cannot ask in
        someone's name."""
        assert self._plan is not None
        request = self._grant_input.request
        if request.by not in self._plan.approval.roster:
            return f"{request.by!r} is not on the roster"
        reason = unproven(
            request,
            action=REQUEST_ACCESS,
            keys=self._keys,
            spent=self._spent,
            minimum=ApiRole.RESPONDER,
        )
        if reason is None:
            spend(self._spent, request.proof, workflow.now())
        return reason

    def _refused(self, reason: str) -> NoReturn:
        self._grant.status, self._grant.detail = GrantStatus.REFUSED, reason
        raise RemediationRefused(reason)

    async def _hold(self) -> str:
        """Until the grant expires or is ended early; why it ends."""
        assert self._grant.expires_at is not None
        try:
            await workflow.wait_condition(
                lambda: self._end_reason is not None,
                timeout=max(self._grant.expires_at - workflow.now(), timedelta(0)),
                timeout_summary=f"access {self._grant_input.grant_id} expires",
            )
        except TimeoutError:
            return f"expired after {format_duration(self._grant.duration)}"
        except asyncio.CancelledError:
            # Whoever cancels the workflow, the access goes with it.
            return "the grant's workflow was cancelled"
        assert self._end_reason is not None
        return self._end_reason

    async def _revoke(self, because: str) -> None:
        """Deletes the role assignment, whatever it takes: rounds of a quick
        retry, then a page and a growing wait, without end."""
        request = self._grant_input.request
        self._grant.status = GrantStatus.REVOKING
        record = await self._begin(
            f"revoke {request.role} of {self._grant.guest} on {request.scope}", mutates=True
        )
        wait = REVOKE_FIRST_WAIT
        failures = 0
        while True:
            try:
                done = await workflow.execute_activity_method(
                    AccessActivities.revoke_access,
                    RevokeAccessRequest(
                        scope=request.scope,
                        assignment_name=assignment_name(
                            self.incident_id, self._grant_input.grant_id
                        ),
                        grant_id=self._grant_input.grant_id,
                    ),
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=REVOKE_ROUND,
                    summary=record.name,
                )
                break
            except ActivityError as e:
                failures += 1
                reason = _reason(e)
                await self._tell(
                    "revoke_failed",
                    f"revoking {request.role} of {self._grant.guest} failed ({reason}); "
                    f"retrying in {format_duration(wait)} (attempt round {failures})",
                )
                await self._page_on_call(
                    f"emergency access NOT revoked yet: {request.role} of {self._grant.guest} "
                    f"on {request.scope} ({reason}); stanch keeps retrying"
                )
                await workflow.sleep(wait)
                wait = min(wait * 2, REVOKE_LONGEST_WAIT)
        now = workflow.now()
        self._grant.status = GrantStatus.REVOKED
        self._grant.revoked_at = now
        self._grant.revoked_because = because
        detail = f"{because}" + ("" if done.deleted else " (it was gone already)")
        await self._finish(record, StepStatus.UNDONE, detail, result=done)
        await self._tell("revoked", f"{self._grant.guest} no longer holds {request.role}: {detail}")

    # ---- ending a grant early ------------------------------------------------------

    @workflow.signal(name=INCIDENT_CLOSED)
    def incident_closed(self) -> None:
        """The incident closed: no access outlives it. Harmless from anyone:
        it can only end access, never give it."""
        self._end("the incident closed", SYSTEM)

    @workflow.update(name=REVOKE_ACCESS)
    async def revoke(self, request: RevokeAccess) -> AccessGrantView:
        if request.proof is not None and request.proof.nonce in self._spent.nonces:
            raise ApplicationError(
                "decision already used", type="DecisionReplayed", non_retryable=True
            )
        spend(self._spent, request.proof, workflow.now())
        said = f": {request.reason}" if request.reason else ""
        self._end(f"revoked by {request.by}{said}", request.by)
        await self._audit(
            "access revoke requested",
            self._grant.scope,
            "accepted",
            {"grant": self._grant_input.grant_id, "reason": request.reason},
            actor=request.by,
        )
        return self._view()

    @revoke.validator
    def _validate_revoke(self, request: RevokeAccess) -> None:
        if not self._grant.status.is_open or self._end_reason is not None:
            ending = f" ({self._end_reason})" if self._end_reason else ""
            raise refused(
                f"access {self._grant_input.grant_id} is already {self._grant.status}{ending}"
            )
        if self._plan is not None and request.by not in self._plan.approval.roster:
            raise refused(f"{request.by!r} is not on the roster")
        reason = unproven(
            request,
            action=REVOKE_ACCESS,
            keys=self._keys,
            spent=self._spent,
            minimum=ApiRole.RESPONDER,
        )
        if reason:
            raise refused(reason)

    def _end(self, reason: str, by: str) -> None:
        if self._end_reason is not None or not self._grant.status.is_open:
            return
        self._end_reason, self._ended_by = reason, by
        if self._grant.status is GrantStatus.REQUESTED:
            # Not granted yet: the gate is closed as a rejection (kept even
            # before the gate is reached, as every decision is).
            self._gate.record(
                ApprovalDecision(step=self.gate, by=by, comment=reason), approve=False
            )

    def _refusal(self, decision: ApprovalDecision) -> str | None:
        if self._plan is None:
            return "the grant is still reading the policy: send it again in a moment"
        if self._end_reason is not None:
            return f"access {self._grant_input.grant_id} is ending: {self._end_reason}"
        return super()._refusal(decision)

    @workflow.query(name="grant")
    def grant(self) -> AccessGrantView:
        return self._view()

    # ---- reporting ----------------------------------------------------------------------

    def _view(self) -> AccessGrantView:
        return self._grant.model_copy(update={"view": self.status()})

    async def _tell(self, kind: str, summary: str, result: RunbookResult | None = None) -> None:
        """To the incident as an access event (its timeline, its grants)."""
        ended_early = self._grant.status in (GrantStatus.REQUESTED, GrantStatus.ACTIVE)
        if result is not None and ended_early:
            # The procedure ended before anything was granted.
            self._grant.status = _closing_status(result.outcome)
            self._grant.detail = self._grant.detail or result.summary
        incident = self._inp.incident_workflow_id
        if not incident:
            return
        event = AccessEvent(kind=kind, summary=summary, grant=self._view())
        try:
            await workflow.get_external_workflow_handle(incident).signal(
                IncidentSignal.ACCESS_EVENT, event
            )
        except ApplicationError:
            self._incident_gone = True
            workflow.logger.warning("incident %s is gone; not told: %s", incident, summary)

    async def _page_on_call(self, reason: str) -> None:
        inp = self._inp
        assert self._plan is not None
        people = self._plan.approval.on_call or self._plan.approval.approvers
        try:
            await page_on_call(
                Page(
                    incident_id=inp.incident_id,
                    workflow_id=inp.incident_workflow_id or workflow.info().workflow_id,
                    title=inp.title or f"emergency access {self._grant_input.grant_id}",
                    severity=inp.severity,
                    status=inp.status,
                    service=inp.service,
                    resources=[self._grant.scope],
                    recipients=[RosterEntry(id=p, name=p) for p in people],
                    tier=0,
                    round=0,
                    channels=None,
                    reason=reason,
                ),
                BOOKKEEPING,
            )
        except ActivityError as e:
            workflow.logger.warning("could not page about a revocation: %s", _reason(e))


def _closing_status(outcome: RunbookOutcome) -> GrantStatus:
    return {
        RunbookOutcome.DENIED: GrantStatus.DENIED,
        RunbookOutcome.REFUSED: GrantStatus.REFUSED,
        RunbookOutcome.HALTED: GrantStatus.REFUSED,
        RunbookOutcome.RELEASED: GrantStatus.REVOKED,
    }.get(outcome, GrantStatus.FAILED)


def _reason(error: ActivityError) -> str:
    cause = error.cause
    message = getattr(cause, "message", None) or str(cause)
    kind = getattr(cause, "type", None)
    return f"{kind}: {message}" if kind and not str(message).startswith(str(kind)) else str(message)
