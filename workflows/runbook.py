"""The runbook kit: what a remediation runbook is written with.

A runbook is a Temporal workflow class that subclasses `Runbook`, declares a
`spec`, and writes its procedure with three verbs:

    health = await self.step("confirm the failure", HealthActivities.get_availability, ref)
    await self.approval("isolate network")
    await self.act("isolate network", NetworkActivities.quarantine_network, request,
                   undo=lambda record: (NetworkActivities.release_quarantine, record))

`step` observes (always runs, even in a dry run), `act` changes something (checked
against the kill switch first; in a dry run only recorded; its undo registered so
a later failure or an approved release can take it back), `approval` waits for
the right people. Every one lands on the incident's timeline and in the audit
trail. The kit turns the procedure's end into a `RunbookResult`: denied,
halted, failed (after undoing what it applied) or the spec's outcome.
"""

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
    from stanch.activities.notify import NotifyActivities
    from stanch.activities.resources import ResourceActivities
    from stanch.activities.response_plan import ResponsePlanActivities
    from stanch.activities.scopes import ScopeActivities
    from stanch.activities.toggles import ToggleActivities
    from stanch.models.azure import ResourceRef
    from stanch.models.config import Remediation
    from stanch.models.decision import DecisionKeysRequest, SpentDecisions
    from stanch.models.errors import describe_validation_error
    from stanch.models.incident import Page, RosterEntry
    from stanch.models.risk import Risk
    from stanch.models.runbook import (
        ApprovalDecision,
        AuditEntry,
        EvidenceRef,
        PendingApproval,
        RemediationCheck,
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
    from stanch.workflows.approval import credential_needed, eligible_approvers, refusal
    from stanch.workflows.decisions import proof_refusal, spend
    from stanch.workflows.scope import named_resources, scope_refusal, tags_needed

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


# Patches: each guards a change to what running runbooks do, proven by the
# histories in tests/histories/ that were recorded before it.
AUDIT_DECISIONS_PATCH = "audit-approval-decisions"
# Every change is checked against remediation.scopes before it is scheduled.
REMEDIATION_SCOPES_PATCH = "remediation-scopes"
# Signals carrying decisions must be signed (updates are checked by their
# validators, which never run on replay, so they need no patch).
SIGNED_DECISIONS_PATCH = "signed-decisions"


class ApprovalDenied(Exception):
    pass


class RemediationHalted(Exception):
    pass


class RemediationRefused(Exception):
    """A change outside remediation.scopes: never attempted."""


class _Decision(BaseModel):
    approvals: list[str] = []
    comments: list[str] = []
    rejected_by: str | None = None


class Runbook:
    """Base class of every runbook workflow (see the module docstring)."""

    spec: ClassVar[RunbookSpec]
    params_model: ClassVar[type[BaseModel]] = BaseModel

    @workflow.init
    def __init__(self, inp: RunbookInput) -> None:
        self._inp = inp
        self._steps: list[StepRecord] = []
        self._applied: list[Undo] = []
        self._evidence: list[EvidenceRef] = []
        self._pending: PendingApproval | None = None
        self._decisions: dict[str, _Decision] = {}
        self._outcome: RunbookOutcome | None = None
        self._scopes: Remediation | None = None  # read at the first change
        self._scope_tags: dict[str, dict[str, str] | None] = {}  # by lower-cased id
        self._keys = dict(inp.approval.decision_keys)
        self._keys_wanted = False
        self._spent = SpentDecisions()

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
        timeout: timedelta = timedelta(minutes=2),
    ) -> Out:
        """Observe: runs in dry runs too, changes nothing."""
        record = await self._begin(name, mutates=False)
        try:
            result: Out = await workflow.execute_activity_method(
                activity,
                arg,
                start_to_close_timeout=timeout,
                retry_policy=AZURE_RETRY,
                heartbeat_timeout=timedelta(seconds=30),
                summary=name,
            )
        except ActivityError as e:
            await self._finish(record, StepStatus.FAILED, _reason(e))
            raise
        await self._finish(record, StepStatus.SUCCEEDED, _describe(result), result=result)
        return result

    async def act(
        self,
        name: str,
        activity: Callable[[Any, Arg], Awaitable[Out]],
        arg: Arg,
        *,
        undo: Callable[[Out], tuple[Callable[..., Awaitable[Any]], BaseModel]] | None = None,
        timeout: timedelta = timedelta(minutes=10),
    ) -> Out | None:
        """Change something. None in a dry run, where it is only recorded."""
        if self.dry_run:
            record = await self._begin(name, mutates=True, status=StepStatus.PLANNED)
            await self._finish(record, StepStatus.PLANNED, f"would run {_name(activity)}")
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
        try:
            result: Out = await workflow.execute_activity_method(
                activity,
                arg,
                start_to_close_timeout=timeout,
                retry_policy=AZURE_RETRY,
                heartbeat_timeout=timedelta(seconds=30),
                summary=name,
            )
        except ActivityError as e:
            await self._finish(record, StepStatus.FAILED, _reason(e))
            raise
        if undo is not None:
            undo_activity, undo_arg = undo(result)
            self._applied.append(
                Undo(step=name, activity=_name(undo_activity), arg=undo_arg.model_dump(mode="json"))
            )
        await self._finish(record, StepStatus.SUCCEEDED, _describe(result), result=result)
        return result

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
            snapshot = await workflow.execute_activity_method(
                ResourceActivities.get_resource,
                ResourceRef(resource_id=target),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=AZURE_RETRY,
                heartbeat_timeout=timedelta(seconds=30),
                summary=record.name,
            )
        except ActivityError as e:
            await self._finish(record, StepStatus.FAILED, _reason(e))
            return None
        shown = ", ".join(f"{k}={v}" for k, v in sorted(snapshot.tags.items())) or "none"
        await self._finish(record, StepStatus.SUCCEEDED, f"tags: {shown}")
        return snapshot.tags

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
        gate = f"approval: {step}"
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
        decision = self._decisions.setdefault(step, _Decision())
        self._pending = PendingApproval(
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
            return decision.rejected_by is not None or len(decision.approvals) >= required

        for number, tier in enumerate(policy.tiers, start=1):
            if decided():
                break
            self._pending.tier = number
            await self._page_approvers(step, risk, tier.people or eligible, number)
            try:
                await self._await_decision(decided, tier.timeout, f"approval tier {number}")
            except TimeoutError:
                continue
        self._pending = None
        workflow.metric_meter().create_histogram_timedelta(
            "stanch_approval_wait", "time an approval waited for its answer"
        ).record(workflow.now() - now, {"risk": str(risk)})
        if decision.rejected_by is not None:
            await self._finish(record, StepStatus.DENIED, f"rejected by {decision.rejected_by}")
            raise ApprovalDenied(f"{step}: rejected by {decision.rejected_by}")
        if len(decision.approvals) < required:
            await self._finish(record, StepStatus.DENIED, "no decision before the deadline")
            raise ApprovalDenied(f"{step}: not approved in time (denied by default)")
        await self._finish(
            record, StepStatus.APPROVED, f"approved by {', '.join(decision.approvals)}"
        )

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

    @workflow.signal
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
            outcome = await self.procedure() or RunbookOutcome(self.spec.outcome)
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
            await asyncio.shield(self._tell("finished", summary, result=result))
            return result
        self._outcome = outcome
        workflow.metric_meter().create_counter("stanch_runbook_outcomes", "runbook ends").add(
            1, {"runbook": self.spec.name, "outcome": str(outcome)}
        )
        result = self._result(outcome, summary)
        await self._audit(
            "runbook finished", self._inp.resource_id, str(outcome), {"summary": summary}
        )
        await self._tell("finished", summary, result=result)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def undo_all(self, undos: list[Undo]) -> int:
        """Take back `undos` (latest first). Used by compensation and release."""
        count = 0
        for undo in reversed(undos):
            record = await self._begin(f"undo {undo.step}", mutates=True)
            try:
                await workflow.execute_activity(
                    undo.activity,
                    undo.arg,
                    start_to_close_timeout=timedelta(minutes=10),
                    retry_policy=AZURE_RETRY,
                    heartbeat_timeout=timedelta(seconds=30),
                    summary=f"undo {undo.step}",
                )
            except ActivityError as e:
                await self._finish(record, StepStatus.FAILED, _reason(e))
                raise
            await self._finish(record, StepStatus.UNDONE, f"{undo.activity} done")
            count += 1
        return count

    async def _compensate(self) -> int:
        applied, self._applied = self._applied, []
        try:
            return await self.undo_all(applied)
        except ActivityError:
            # What could not be undone stays on record for a human.
            self._applied = applied
            return 0

    def _result(self, outcome: RunbookOutcome, summary: str) -> RunbookResult:
        return RunbookResult(
            runbook=self.spec.name,
            outcome=outcome,
            summary=summary,
            steps=self._steps,
            applied=self._applied,
            evidence=self._evidence,
        )

    # ---- approvals arrive here -------------------------------------------------

    @workflow.update(name="approve")
    async def approve(self, decision: ApprovalDecision) -> RunbookView:
        self._spend(decision)
        self._decide(decision, approve=True)
        await self._audit_decision(decision, "approved", "update")
        return self.status()

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        self._refuse_if_not_allowed(decision, "approve")

    @workflow.update(name="reject")
    async def reject(self, decision: ApprovalDecision) -> RunbookView:
        self._spend(decision)
        self._decide(decision, approve=False)
        await self._audit_decision(decision, "rejected", "update")
        return self.status()

    @reject.validator
    def _validate_reject(self, decision: ApprovalDecision) -> None:
        self._refuse_if_not_allowed(decision, "reject")

    def _refuse_if_not_allowed(self, decision: ApprovalDecision, verb: str) -> None:
        """Before anything enters history: the caller gets the reason as the
        update's failure."""
        reason = self._refusal(decision) or self._unproven(decision, verb)
        if reason:
            raise ValueError(reason)

    @workflow.signal(name="approve")
    async def approve_signal(self, decision: ApprovalDecision) -> None:
        """For clients that can only signal: the same rule, checked here; a
        refusal leaves an audit record instead of an answer."""
        await self._signalled(decision, approve=True)

    @workflow.signal(name="reject")
    async def reject_signal(self, decision: ApprovalDecision) -> None:
        await self._signalled(decision, approve=False)

    async def _signalled(self, decision: ApprovalDecision, approve: bool) -> None:
        reason = self._refusal(decision)
        if not reason and workflow.patched(SIGNED_DECISIONS_PATCH):
            # A forged or replayed signal is ignored, and leaves an audit record.
            reason = self._unproven(decision, "approve" if approve else "reject")
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
        self._decide(decision, approve)
        await self._audit_decision(decision, "approved" if approve else "rejected", "signal")

    async def _audit_decision(self, decision: ApprovalDecision, outcome: str, via: str) -> None:
        if not workflow.patched(AUDIT_DECISIONS_PATCH):
            return  # runbooks that began before decisions were audited one by one
        await self._audit(
            f"approval: {decision.step}",
            self._inp.resource_id,
            outcome,
            {"comment": decision.comment, "via": via},
            actor=decision.by,
        )

    def _refusal(self, decision: ApprovalDecision) -> str | None:
        if self._outcome is not None:
            return f"runbook {self.spec.name} has already finished ({self._outcome})"
        risk = self.spec.approvals.get(decision.step)
        if risk is None:
            gates = ", ".join(self.spec.approvals) or "none"
            return f"step: {decision.step!r} is not an approval gate of {self.spec.name} ({gates})"
        current = self._decisions.get(decision.step)
        if current is not None and current.rejected_by is not None:
            return f"step {decision.step!r} was already rejected by {current.rejected_by}"
        if (
            current is not None
            and self._pending is None
            and current.approvals
            and any(
                s.name == f"approval: {decision.step}" and s.status is StepStatus.APPROVED
                for s in self._steps
            )
        ):
            return f"step {decision.step!r} is already approved"
        return refusal(
            self._inp.approval,
            risk,
            self._inp.requested_by,
            decision.by,
            current.approvals if current else [],
        )

    def _unproven(self, decision: ApprovalDecision, verb: str) -> str | None:
        """Why this decision is not proven to come from a credential that may
        carry it (workflows/decisions.py), or None."""
        risk = self.spec.approvals[decision.step]
        return proof_refusal(
            decision.proof,
            workflow_id=workflow.info().workflow_id,
            action=verb,
            request=decision,
            keys=self._keys,
            now=workflow.now(),
            spent=self._spent,
            minimum=credential_needed(self._inp.approval, risk, decision.by),
        )

    def _spend(self, decision: ApprovalDecision) -> None:
        # Two updates with one proof may both pass validation before either runs.
        if decision.proof is not None and decision.proof.nonce in self._spent.nonces:
            raise ApplicationError("decision already used", type="DecisionReplayed")
        spend(self._spent, decision.proof, workflow.now())

    def _decide(self, decision: ApprovalDecision, approve: bool) -> None:
        # Stored even before the gate is reached: an early approval is not lost.
        state = self._decisions.setdefault(decision.step, _Decision())
        if approve:
            state.approvals.append(decision.by)
        else:
            state.rejected_by = decision.by
        if decision.comment:
            state.comments.append(f"{decision.by}: {decision.comment}")
        if self._pending is not None and self._pending.step == decision.step:
            self._pending.approvals = list(state.approvals)

    @workflow.query
    def status(self) -> RunbookView:
        return RunbookView(
            runbook=self.spec.name,
            workflow_id=workflow.info().workflow_id,
            dry_run=self.dry_run,
            steps=self._steps,
            pending=self._pending,
            outcome=self._outcome,
            applied=self._applied,
        )

    # ---- bookkeeping -------------------------------------------------------------

    async def _begin(
        self, name: str, mutates: bool = False, status: StepStatus = StepStatus.RUNNING
    ) -> StepRecord:
        record = StepRecord(name=name, status=status, mutates=mutates, started_at=workflow.now())
        self._steps.append(record)
        if status is not StepStatus.PLANNED:
            await self._tell(f"step_{status}", f"{name}: {status}")
        return record

    async def _finish(
        self, record: StepRecord, status: StepStatus, detail: str | None, result: Any = None
    ) -> None:
        record.status, record.ended_at, record.detail = status, workflow.now(), detail
        request_id = getattr(result, "request_id", None) or next(
            iter(getattr(result, "request_ids", []) or []), None
        )
        if isinstance(result, EvidenceRef):
            self._evidence.append(result)
        await self._audit(
            record.name,
            self._inp.resource_id,
            str(status),
            {
                "detail": detail,
                "dry_run": self.dry_run,
                "mutates": record.mutates,
                **(
                    {"sha256": result.sha256, "evidence": result.location}
                    if isinstance(result, EvidenceRef)
                    else {}
                ),
            },
            request_id=request_id,
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
        if not self._inp.incident_workflow_id:
            return
        event = RunbookEvent(
            runbook=self.spec.name,
            workflow_id=workflow.info().workflow_id,
            kind=kind,
            summary=summary,
            view=self.status(),
            result=result,
        )
        try:
            await workflow.get_external_workflow_handle(self._inp.incident_workflow_id).signal(
                "runbook_event", event
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
        )
        try:
            await workflow.execute_activity_method(
                NotifyActivities.page_on_call,
                page,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=BOOKKEEPING,
            )
        except ActivityError as e:
            await self._tell("page_failed", f"could not page approvers: {_reason(e)}")


def _name(fn: Callable[..., Any]) -> str:
    defn = getattr(fn, "__temporal_activity_definition", None)
    return str(getattr(defn, "name", None) or fn.__name__)


def _reason(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) else error
    message = getattr(cause, "message", None) or str(cause)
    kind = getattr(cause, "type", None)
    return f"{kind}: {message}" if kind and not str(message).startswith(str(kind)) else str(message)


def _describe(result: Any) -> str | None:
    if result is None:
        return None
    summary_line = getattr(result, "summary_line", None)
    if callable(summary_line):
        return str(summary_line())
    if isinstance(result, BaseModel):
        text = result.model_dump_json(exclude_none=True)
        return text if len(text) <= 200 else text[:197] + "..."
    return str(result)[:200]
