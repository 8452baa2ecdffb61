"""The `Runbook` base class: the verbs a procedure is written with, the frame
around it, and the messages it answers. The bookkeeping is _saga.py, the
approval gate's book _approval_gate.py; both are pure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    # Signature checks raise cryptography's exceptions from Rust, which finds
    # them by import: they must be the real modules, never sandboxed copies.
    import cryptography.exceptions  # noqa: F401

    from stanch.activities.audit import AuditActivities
    from stanch.activities.resources import ResourceActivities
    from stanch.activities.response_plan import ResponsePlanActivities
    from stanch.activities.scopes import ScopeActivities
    from stanch.activities.toggles import ToggleActivities
    from stanch.models.audit import AuditEntry
    from stanch.models.azure import ResourceRef
    from stanch.models.chat import GateAsk
    from stanch.models.config import Remediation
    from stanch.models.decision import DecisionKeysRequest, SpentDecisions
    from stanch.models.errors import describe_validation_error
    from stanch.models.incident import Page, RosterEntry
    from stanch.models.messages import IncidentSignal, RunbookDecision, RunbookQuery, RunbookSignal
    from stanch.models.risk import Risk
    from stanch.models.runbook import (
        ApprovalDecision,
        PendingApproval,
        RunbookEvent,
        RunbookInput,
        RunbookOutcome,
        RunbookResult,
        RunbookSpec,
        RunbookView,
        StepRecord,
        StepStatus,
        Undo,
    )
    from stanch.models.toggles import RemediationCheck
    from stanch.workflows.approval import credential_needed, eligible_approvers
    from stanch.workflows.decisions import spend
    from stanch.workflows.paging import page_on_call
    from stanch.workflows.refusal import refused
    from stanch.workflows.runbook._approval_gate import ApprovalBook, GateDecision, with_comments
    from stanch.workflows.runbook._saga import (
        Saga,
        activity_name,
        describe,
        finish_details,
        gate_step,
        request_id_of,
    )
    from stanch.workflows.scope import named_resources, scope_refusal, tags_needed
    from stanch.workflows.signed_requests import spend_once, unproven

Arg = TypeVar("Arg", bound=BaseModel)
Out = TypeVar("Out")
Params = TypeVar("Params", bound=BaseModel)

AZURE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=8,
)
BOOKKEEPING = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
OBSERVE_TIMEOUT = timedelta(minutes=2)
CHANGE_TIMEOUT = timedelta(minutes=10)
# Azure activities heartbeat every few seconds while they wait (activities/
# heartbeats.py): a worker that dies or is cut off mid-step is noticed within
# this, and the step retried on another worker, not after CHANGE_TIMEOUT.
# Replay-safe: the timeout is an option of the same ScheduleActivityTask.
HEARTBEAT = timedelta(seconds=20)


# Patches: each guards a change to what running runbooks do, proven by the
# histories in tests/histories/ that were recorded before it.
AUDIT_DECISIONS_PATCH = "audit-approval-decisions"
# Every change is checked against remediation.scopes before it is scheduled.
REMEDIATION_SCOPES_PATCH = "remediation-scopes"
# Signals carrying decisions must be signed (updates are checked by their
# validators, which never run on replay, so they need no patch).
SIGNED_DECISIONS_PATCH = "signed-decisions"
# Reports to the incident are sent in order by a task of their own, so the
# procedure never waits for one (about eight round trips used to come before
# the first change); the view each carries is read when it is sent.
UNAWAITED_REPORTS_PATCH = "reports-not-awaited"
# An approval is answered once the decision is recorded; its audit record is
# scheduled in the same workflow task (so it is as durable as the answer) and
# written before the gate moves on.
DECISION_ANSWERED_BEFORE_AUDIT_PATCH = "decision-answered-before-audit"
# The gate's timeline entry carries the deciders' comments (cut short), not
# only their names.
APPROVAL_COMMENT_PATCH = "approval-comment"


class ApprovalDenied(Exception):
    pass


class RemediationHalted(Exception):
    pass


class RemediationRefused(Exception):
    """A change outside remediation.scopes: never attempted."""


class Runbook:
    """Base class of every runbook workflow (see the package docstring)."""

    spec: ClassVar[RunbookSpec]

    @workflow.init
    def __init__(self, inp: RunbookInput) -> None:
        self._inp = inp
        self._saga = Saga()
        self._gate = ApprovalBook()
        self._outcome: RunbookOutcome | None = None
        self._scopes: Remediation | None = None  # read at the first change
        self._scope_tags: dict[str, dict[str, str] | None] = {}  # by lower-cased id
        self._keys = dict(inp.approval.decision_keys)
        self._keys_wanted = False
        self._spent = SpentDecisions()
        # Reports not yet sent to the incident, oldest first, and whether the
        # task sending them is running (UNAWAITED_REPORTS_PATCH).
        self._reports: list[tuple[str, str, RunbookResult | None]] = []
        self._reporting = False
        self._reporter: asyncio.Task[None] | None = None
        # Decisions answered whose audit record is still being written (their
        # tasks kept here so none is collected while it runs).
        self._decision_audits = 0
        self._auditing: list[asyncio.Task[None]] = []

    # ---- what runbooks call ------------------------------------------------

    @property
    def dry_run(self) -> bool:
        return self._inp.dry_run

    @property
    def resource_id(self) -> str:
        return self._inp.resource_id

    @property
    def incident_id(self) -> str:
        return self._inp.incident_id

    def parameters(self, model: type[Params]) -> Params:
        try:
            return model.model_validate(self._inp.params)
        except ValidationError as e:
            # A plain exception would fail the workflow task and retry it until
            # a redeploy; bad parameters are a failed run, told to humans.
            problems = "; ".join(describe_validation_error(e))
            raise ApplicationError(
                f"params: {problems}", type="InvalidParams", non_retryable=True
            ) from None

    async def step(
        self,
        name: str,
        activity: Callable[[Any, Arg], Awaitable[Out]],
        arg: Arg,
        *,
        timeout: timedelta = OBSERVE_TIMEOUT,
    ) -> Out:
        """Observe: runs in dry runs too, changes nothing."""
        record = await self._begin(name, mutates=False)
        result: Out = await self._run_activity(record, activity, arg, timeout)
        await self._finish(record, StepStatus.SUCCEEDED, describe(result), result=result)
        return result

    async def act(
        self,
        name: str,
        activity: Callable[[Any, Arg], Awaitable[Out]],
        arg: Arg,
        *,
        undo: Callable[[Out], tuple[Callable[..., Awaitable[Any]], BaseModel]] | None = None,
        timeout: timedelta = CHANGE_TIMEOUT,
    ) -> Out | None:
        """Change something. None in a dry run, where it is only recorded."""
        if self.dry_run:
            record = await self._begin(name, mutates=True, status=StepStatus.PLANNED)
            await self._finish(record, StepStatus.PLANNED, f"would run {activity_name(activity)}")
            return None
        if workflow.patched(REMEDIATION_SCOPES_PATCH):
            await self._refuse_outside_scopes(name, arg)
        allowed = await workflow.execute_activity_method(
            ToggleActivities.check_remediation,
            RemediationCheck(runbook=self.spec.name),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING,
        )
        if not allowed.allowed:
            raise RemediationHalted(allowed.reason or "remediation switched off")
        record = await self._begin(name, mutates=True)
        result: Out = await self._run_activity(record, activity, arg, timeout)
        if undo is not None:
            undo_activity, undo_arg = undo(result)
            self._saga.applied_change(name, undo_activity, undo_arg)
        await self._finish(record, StepStatus.SUCCEEDED, describe(result), result=result)
        return result

    async def _run_activity(
        self, record: StepRecord, activity: Callable[..., Any] | str, arg: Any, timeout: timedelta
    ) -> Any:
        """One step's activity, retried as Azure calls are; a failure finishes
        the step's record as failed (on the timeline and the audit trail) and
        is raised for the procedure, or the frame, to handle."""
        try:
            return await workflow.execute_activity(
                activity,
                arg,
                start_to_close_timeout=timeout,
                retry_policy=AZURE_RETRY,
                heartbeat_timeout=HEARTBEAT,
                summary=record.name,
            )
        except ActivityError as e:
            await self._finish(record, StepStatus.FAILED, _reason(e))
            raise

    async def _refuse_outside_scopes(self, name: str, arg: BaseModel) -> None:
        """Raise RemediationRefused, before any Azure call, if this change
        touches anything outside remediation.scopes: the alert chose the
        resource, the policy bounds it. What the change touches: every ARM id
        in its argument, or the runbook's resource when the argument names none."""
        if self._scopes is None:
            self._scopes = await workflow.execute_activity_method(
                ScopeActivities.load_remediation_scopes,
                RemediationCheck(runbook=self.spec.name),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=BOOKKEEPING,
            )
        scopes = self._scopes.scopes
        for target in named_resources(arg.model_dump(mode="json")) or [self.resource_id]:
            key = target.lower()
            if tags_needed(target, scopes) and key not in self._scope_tags:
                self._scope_tags[key] = await self._read_tags(target)
            reason = scope_refusal(target, scopes, self._scope_tags.get(key))
            if reason:
                record = await self._begin(name, mutates=True)
                await self._finish(record, StepStatus.REFUSED, reason)
                raise RemediationRefused(reason)

    async def _read_tags(self, target: str) -> dict[str, str] | None:
        """A scope that requires tags needs the resource's own: one read, on
        the timeline like any step. None when it cannot be read (refused)."""
        record = await self._begin(f"read tags of {target.rsplit('/', 1)[-1]} (remediation scope)")
        try:
            snapshot = await self._run_activity(
                record,
                ResourceActivities.get_resource,
                ResourceRef(resource_id=target),
                OBSERVE_TIMEOUT,
            )
        except ActivityError:
            return None
        shown = ", ".join(f"{k}={v}" for k, v in sorted(snapshot.tags.items())) or "none"
        await self._finish(record, StepStatus.SUCCEEDED, f"tags: {shown}")
        tags: dict[str, str] = snapshot.tags
        return tags

    async def approval(self, step: str) -> None:
        """Wait until the policy's approvers say yes. Raises ApprovalDenied on a
        rejection or when every tier has timed out (denied by default)."""
        risk = self.spec.approvals.get(step)
        if risk is None:
            raise ApplicationError(
                f"runbook {self.spec.name} has no approval gate {step!r} in its spec",
                type="RunbookDefect",
                non_retryable=True,
            )
        plan = self._inp.approval
        policy = plan.policy
        eligible = eligible_approvers(plan, risk, self._inp.requested_by)
        required = policy.needed(risk)
        gate = gate_step(step)
        if self.dry_run:
            record = await self._begin(gate, status=StepStatus.PLANNED)
            await self._finish(
                record,
                StepStatus.PLANNED,
                f"would ask {required} of {', '.join(eligible) or 'nobody'} ({risk} risk)",
            )
            return
        if risk in policy.auto_approve:
            record = await self._begin(gate)
            await self._finish(record, StepStatus.APPROVED, f"approved by policy ({risk} risk)")
            return
        record = await self._begin(gate, status=StepStatus.WAITING)
        if len(eligible) < required:
            await self._finish(
                record,
                StepStatus.DENIED,
                f"needs {required} approvers, only {len(eligible)} eligible",
            )
            raise ApprovalDenied(f"{step}: not enough eligible approvers")
        now = workflow.now()
        deadline = now + sum((t.timeout for t in policy.tiers), timedelta())
        decision = self._gate.on(step)
        self._gate.pending = pending = PendingApproval(
            runbook_workflow_id=workflow.info().workflow_id,
            step=step,
            risk=risk,
            eligible=eligible,
            required=required,
            approvals=decision.approvals,
            requested_at=now,
            deadline=deadline,
        )
        await self._tell(
            "approval_requested",
            f"Approval needed for {step!r} ({risk} risk): {required} of "
            f"{', '.join(eligible)}; denied at {deadline:%H:%M:%S}Z if unanswered",
        )

        def decided() -> bool:
            return self._gate.decided(step, required)

        for number, tier in enumerate(policy.tiers, start=1):
            if decided():
                break
            pending.tier = number
            # Whoever the page reaches finds the incident knowing of the gate.
            await self._told()
            await self._page_approvers(step, risk, tier.people or eligible, number)
            try:
                await self._await_decision(decided, tier.timeout, f"approval tier {number}")
            except TimeoutError:
                continue
        self._gate.pending = None
        await self._decisions_audited()  # the decisions on record before the gate's end
        workflow.metric_meter().create_histogram_timedelta(
            "stanch_approval_wait", "time an approval waited for its answer"
        ).record(workflow.now() - now, {"risk": str(risk)})
        if decision.rejected_by is not None:
            said = self._with_comments(f"rejected by {decision.rejected_by}", decision)
            await self._finish(record, StepStatus.DENIED, said)
            raise ApprovalDenied(f"{step}: rejected by {decision.rejected_by}")
        if len(decision.approvals) < required:
            await self._finish(record, StepStatus.DENIED, "no decision before the deadline")
            raise ApprovalDenied(f"{step}: not approved in time (denied by default)")
        said = self._with_comments(f"approved by {', '.join(decision.approvals)}", decision)
        await self._finish(record, StepStatus.APPROVED, said)

    def _with_comments(self, outcome: str, decision: GateDecision) -> str:
        # Gates that ended before comments were shown keep their plain words.
        if not decision.comments or not workflow.patched(APPROVAL_COMMENT_PATCH):
            return outcome
        return with_comments(outcome, decision)

    async def _await_decision(
        self, decided: Callable[[], bool], timeout: timedelta, summary: str
    ) -> None:
        """Wait for the decision; meanwhile load the decision keys if asked to
        (runbooks that began before decisions were signed have none)."""
        until = workflow.now() + timeout
        while True:
            await workflow.wait_condition(
                lambda: decided() or self._keys_wanted,
                timeout=until - workflow.now(),
                timeout_summary=summary,
            )
            if decided() or not self._keys_wanted:
                return
            await self._refresh_decision_keys()
            if workflow.now() >= until:
                raise TimeoutError(summary)

    @workflow.signal(name=RunbookSignal.REFRESH_DECISION_KEYS)
    def refresh_decision_keys(self) -> None:
        """Sent by the gateway when a decision was refused for want of keys.
        Harmless from anyone: the keys come from the policy, not the signal."""
        self._keys_wanted = True

    async def _refresh_decision_keys(self) -> None:
        self._keys_wanted = False
        if not workflow.patched(SIGNED_DECISIONS_PATCH):
            return
        fresh = await workflow.execute_activity_method(
            ResponsePlanActivities.load_decision_keys,
            DecisionKeysRequest(),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING,
        )
        self._keys = fresh.keys

    # ---- the frame around every procedure ------------------------------------

    async def procedure(self) -> RunbookOutcome | None:
        raise NotImplementedError

    async def perform(self) -> RunbookResult:
        await self._tell(
            "started",
            f"Runbook {self.spec.name} started"
            + (" (dry run: nothing will be changed)" if self.dry_run else ""),
        )
        try:
            outcome = await self.procedure() or self.spec.outcome
            if self.dry_run:
                outcome = RunbookOutcome.PLANNED
            summary = f"{self.spec.name}: {outcome}"
        except ApprovalDenied as e:
            outcome, summary = RunbookOutcome.DENIED, f"denied: {e}; handed to humans"
        except RemediationHalted as e:
            outcome, summary = RunbookOutcome.HALTED, f"halted: {e}; handed to humans"
        except RemediationRefused as e:
            outcome, summary = RunbookOutcome.REFUSED, f"refused: {e}; handed to humans"
        except (ActivityError, ApplicationError) as e:
            undone = await self._compensate()
            outcome = RunbookOutcome.FAILED
            summary = f"failed: {_reason(e)}; undid {undone} change(s); handed to humans"
        except CancelledError:
            outcome, summary = (
                RunbookOutcome.CANCELLED,
                "cancelled: the incident no longer needs it",
            )
            self._outcome = outcome
            result = self._result(outcome, summary)
            await asyncio.shield(self._finished(summary, result))
            return result
        self._outcome = outcome
        workflow.metric_meter().create_counter("stanch_runbook_outcomes", "runbook ends").add(
            1, {"runbook": self.spec.name, "outcome": str(outcome)}
        )
        result = self._result(outcome, summary)
        await self._audit(
            "runbook finished", self._inp.resource_id, str(outcome), {"summary": summary}
        )
        await self._finished(summary, result)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _finished(self, summary: str, result: RunbookResult) -> None:
        """The last report sent, and every decision on the audit trail."""
        await self._tell("finished", summary, result=result)
        await self._told()
        await self._decisions_audited()

    async def undo_all(self, undos: list[Undo]) -> int:
        """Take back `undos` (latest first). Used by compensation and release."""
        count = 0
        for undo in reversed(undos):
            record = await self._begin(f"undo {undo.step}", mutates=True)
            await self._run_activity(record, undo.activity, undo.arg, CHANGE_TIMEOUT)
            await self._finish(record, StepStatus.UNDONE, f"{undo.activity} done")
            count += 1
        return count

    async def _compensate(self) -> int:
        applied = self._saga.take_applied()
        try:
            return await self.undo_all(applied)
        except ActivityError:
            self._saga.still_applied(applied)
            return 0

    def _result(self, outcome: RunbookOutcome, summary: str) -> RunbookResult:
        return RunbookResult(
            runbook=self.spec.name,
            outcome=outcome,
            summary=summary,
            steps=self._saga.steps,
            applied=self._saga.applied,
            evidence=self._saga.evidence,
        )

    # ---- approvals arrive here -------------------------------------------------

    @workflow.update(name=RunbookDecision.APPROVE)
    async def approve(self, decision: ApprovalDecision) -> RunbookView:
        return await self._decided(decision, approve=True)

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        self._refuse_if_not_allowed(decision, RunbookDecision.APPROVE)

    @workflow.update(name=RunbookDecision.REJECT)
    async def reject(self, decision: ApprovalDecision) -> RunbookView:
        return await self._decided(decision, approve=False)

    @reject.validator
    def _validate_reject(self, decision: ApprovalDecision) -> None:
        self._refuse_if_not_allowed(decision, RunbookDecision.REJECT)

    async def _decided(self, decision: ApprovalDecision, approve: bool) -> RunbookView:
        spend_once(self._spent, decision)
        self._gate.record(decision, approve=approve)
        outcome = "approved" if approve else "rejected"
        if not workflow.patched(DECISION_ANSWERED_BEFORE_AUDIT_PATCH):
            await self._audit_decision(decision, outcome, "update")
            return self.status()
        # The audit activity is scheduled in the workflow task that completes
        # this update: once the approver has the answer, the record is bound
        # to be written. The gate waits for it before it moves on.
        self._decision_audits += 1
        self._auditing.append(asyncio.create_task(self._audit_answered(decision, outcome)))
        return self.status()

    async def _audit_answered(self, decision: ApprovalDecision, outcome: str) -> None:
        try:
            await self._audit_decision(decision, outcome, "update")
        finally:
            self._decision_audits -= 1

    async def _decisions_audited(self) -> None:
        if self._decision_audits:
            await workflow.wait_condition(lambda: self._decision_audits == 0)
        self._auditing.clear()

    def _refuse_if_not_allowed(self, decision: ApprovalDecision, verb: RunbookDecision) -> None:
        """Before anything enters history: the caller gets the reason as the
        update's failure."""
        reason = self._refusal(decision) or self._unproven(decision, verb)
        if reason:
            raise refused(reason)

    @workflow.signal(name=RunbookDecision.APPROVE)
    async def approve_signal(self, decision: ApprovalDecision) -> None:
        """For clients that can only signal: the same rule, checked here; a
        refusal leaves an audit record instead of an answer."""
        await self._signalled(decision, approve=True)

    @workflow.signal(name=RunbookDecision.REJECT)
    async def reject_signal(self, decision: ApprovalDecision) -> None:
        await self._signalled(decision, approve=False)

    async def _signalled(self, decision: ApprovalDecision, approve: bool) -> None:
        reason = self._refusal(decision)
        if not reason and workflow.patched(SIGNED_DECISIONS_PATCH):
            # A forged or replayed signal is ignored, and leaves an audit record.
            verb = RunbookDecision.APPROVE if approve else RunbookDecision.REJECT
            reason = self._unproven(decision, verb)
            if not reason:
                spend(self._spent, decision.proof, workflow.now())
        if reason:
            await self._audit(
                "approval refused",
                decision.step,
                "refused",
                {"by": decision.by, "reason": reason, "via": "signal"},
                actor=decision.by,
            )
            return
        self._gate.record(decision, approve)
        await self._audit_decision(decision, "approved" if approve else "rejected", "signal")

    async def _audit_decision(self, decision: ApprovalDecision, outcome: str, via: str) -> None:
        if not workflow.patched(AUDIT_DECISIONS_PATCH):
            return  # runbooks that began before decisions were audited one by one
        await self._audit(
            gate_step(decision.step),
            self._inp.resource_id,
            outcome,
            {"comment": decision.comment, "via": via},
            actor=decision.by,
        )

    def _refusal(self, decision: ApprovalDecision) -> str | None:
        return self._gate.refusal(decision, self.spec, self._inp, self._outcome, self._saga)

    def _unproven(self, decision: ApprovalDecision, verb: RunbookDecision) -> str | None:
        """Why this decision is not proven to come from a credential that may
        carry it (workflows/decisions.py), or None."""
        risk = self.spec.approvals[decision.step]
        return unproven(
            decision,
            action=verb,
            keys=self._keys,
            spent=self._spent,
            minimum=credential_needed(self._inp.approval, risk, decision.by),
        )

    @workflow.query(name=RunbookQuery.STATUS)
    def status(self) -> RunbookView:
        return RunbookView(
            runbook=self.spec.name,
            workflow_id=workflow.info().workflow_id,
            dry_run=self.dry_run,
            steps=self._saga.steps,
            pending=self._gate.pending,
            outcome=self._outcome,
            applied=self._saga.applied,
        )

    # ---- reporting: timeline, audit trail, pages -----------------------------------

    async def _begin(
        self, name: str, mutates: bool = False, status: StepStatus = StepStatus.RUNNING
    ) -> StepRecord:
        record = self._saga.begin(name, mutates, status, workflow.now())
        if status is not StepStatus.PLANNED:
            await self._tell(f"step_{status}", f"{name}: {status}")
        return record

    async def _finish(
        self, record: StepRecord, status: StepStatus, detail: str | None, result: Any = None
    ) -> None:
        self._saga.finish(record, status, detail, workflow.now(), result)
        await self._audit(
            record.name,
            self._inp.resource_id,
            str(status),
            finish_details(record, detail, self.dry_run, result),
            request_id=request_id_of(result),
        )
        await self._tell(
            f"step_{status}", f"{record.name}: {status}" + (f" ({detail})" if detail else "")
        )

    async def _audit(
        self,
        action: str,
        target: str | None,
        outcome: str,
        details: dict[str, Any],
        request_id: str | None = None,
        actor: str | None = None,
    ) -> None:
        await workflow.execute_activity_method(
            AuditActivities.record_audit,
            AuditEntry(
                incident_id=self._inp.incident_id,
                actor=actor or f"runbook:{self.spec.name}",
                action=action,
                target=target,
                outcome=outcome,
                details=details,
                request_id=request_id,
                at=workflow.now(),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING,
        )

    async def _tell(self, kind: str, summary: str, result: RunbookResult | None = None) -> None:
        """Report to the incident (its timeline and state), if there is one.
        Queued: a task of its own sends the reports one after another, in
        order, while the procedure goes on (`_told` waits for them)."""
        if not self._inp.incident_workflow_id:
            return
        if not workflow.patched(UNAWAITED_REPORTS_PATCH):
            await self._report(kind, summary, result)  # runbooks that began before
            return
        self._reports.append((kind, summary, result))
        if not self._reporting:
            self._reporting = True
            self._reporter = asyncio.create_task(self._send_reports())

    async def _send_reports(self) -> None:
        # What piles up while one signal is on its way leaves as the next: a
        # procedure of many quick steps costs its incident few workflow tasks.
        while self._reports:
            batch, self._reports = self._reports, []
            view = self.status()  # as the runbook stands when they leave
            await self._signal_incident(
                IncidentSignal.RUNBOOK_EVENTS,
                [self._event(kind, summary, view, result) for kind, summary, result in batch],
                batch[-1][1],
            )
        self._reporting = False

    async def _told(self) -> None:
        """Every report sent (the incident has them, or is gone)."""
        if self._reporting:
            await workflow.wait_condition(lambda: not self._reporting)

    async def _report(self, kind: str, summary: str, result: RunbookResult | None) -> None:
        """One report, awaited: how runbooks that began before reported."""
        event = self._event(kind, summary, self.status(), result)
        await self._signal_incident(IncidentSignal.RUNBOOK_EVENT, event, summary)

    def _event(
        self, kind: str, summary: str, view: RunbookView, result: RunbookResult | None
    ) -> RunbookEvent:
        return RunbookEvent(
            runbook=self.spec.name,
            workflow_id=workflow.info().workflow_id,
            kind=kind,
            summary=summary,
            view=view,
            result=result,
        )

    async def _signal_incident(self, signal: IncidentSignal, arg: Any, summary: str) -> None:
        assert self._inp.incident_workflow_id is not None
        try:
            await workflow.get_external_workflow_handle(self._inp.incident_workflow_id).signal(
                signal, arg
            )
        except ApplicationError:
            workflow.logger.warning(
                "incident %s is gone; not told: %s", self._inp.incident_workflow_id, summary
            )

    async def _page_approvers(self, step: str, risk: Risk, people: list[str], tier: int) -> None:
        inp = self._inp
        page = Page(
            incident_id=inp.incident_id,
            workflow_id=inp.incident_workflow_id or workflow.info().workflow_id,
            title=inp.title or self.spec.name,
            severity=inp.severity,
            status=inp.status,
            service=inp.service,
            resources=[inp.resource_id],
            recipients=[RosterEntry(id=p, name=p) for p in people],
            tier=tier,
            round=0,
            channels=None,
            reason=(
                f"approval needed: {step!r} ({risk} risk) in {self.spec.name}; "
                f"stanch approve {inp.incident_id} '{step}' --as <you>"
            ),
            # The activity's input only (replay does not compare it): chat pages get buttons.
            approval=GateAsk(
                runbook=self.spec.name, run=workflow.info().workflow_id, step=step, risk=risk
            ),
        )
        try:
            await page_on_call(page, BOOKKEEPING)
        except ActivityError as e:
            await self._tell("page_failed", f"could not page approvers: {_reason(e)}")


def _reason(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) else error
    message = getattr(cause, "message", None) or str(cause)
    kind = getattr(cause, "type", None)
    return f"{kind}: {message}" if kind and not str(message).startswith(str(kind)) else str(message)
