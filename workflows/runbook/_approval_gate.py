"""The approval gate's book: the decisions taken on each gate (kept even when
they arrive before the gate is reached), the approval waiting now, and why a
decision is refused. Pure and deterministic; who may decide is
workflows/approval.py, whether the decision is proven workflows/decisions.py.
"""

from __future__ import annotations

from pydantic import BaseModel

from stanch.models.free_text import bounded
from stanch.models.runbook import ApprovalDecision, PendingApproval, RunbookInput, RunbookSpec
from stanch.models.status import RunbookOutcome
from stanch.workflows.approval import refusal
from stanch.workflows.runbook._saga import Saga, gate_step


class GateDecision(BaseModel):
    approvals: list[str] = []
    comments: list[str] = []
    rejected_by: str | None = None


# A comment can be pages long (NOTE_LIMIT); the audit trail keeps it whole, the
# timeline entry of the gate shows this much of each.
COMMENT_SHOWN = 280


def with_comments(outcome: str, decision: GateDecision) -> str:
    """The gate's outcome as the timeline tells it, with what the deciders said:
    `approved by carol — carol: disk full, evidence kept`."""
    if not decision.comments:
        return outcome
    said = "; ".join(bounded(comment, COMMENT_SHOWN) for comment in decision.comments)
    return f"{outcome} — {said}"


class ApprovalBook:
    def __init__(self) -> None:
        self.decisions: dict[str, GateDecision] = {}
        self.pending: PendingApproval | None = None

    def on(self, step: str) -> GateDecision:
        return self.decisions.setdefault(step, GateDecision())

    def decided(self, step: str, required: int) -> bool:
        decision = self.on(step)
        return decision.rejected_by is not None or len(decision.approvals) >= required

    def record(self, decision: ApprovalDecision, approve: bool) -> None:
        # Stored even before the gate is reached: an early approval is not lost.
        state = self.on(decision.step)
        if approve:
            state.approvals.append(decision.by)
        else:
            state.rejected_by = decision.by
        if decision.comment:
            state.comments.append(f"{decision.by}: {decision.comment}")
        if self.pending is not None and self.pending.step == decision.step:
            self.pending.approvals = list(state.approvals)

    def refusal(
        self,
        decision: ApprovalDecision,
        spec: RunbookSpec,
        inp: RunbookInput,
        outcome: RunbookOutcome | None,
        saga: Saga,
    ) -> str | None:
        """Why `decision` may not count, or None: the run is over, the step is
        no gate, the gate is decided already, or the person may not decide it."""
        if outcome is not None:
            return f"runbook {spec.name} has already finished ({outcome})"
        risk = spec.approvals.get(decision.step)
        if risk is None:
            gates = ", ".join(spec.approvals) or "none"
            return f"step: {decision.step!r} is not an approval gate of {spec.name} ({gates})"
        current = self.decisions.get(decision.step)
        if current is not None and current.rejected_by is not None:
            return f"step {decision.step!r} was already rejected by {current.rejected_by}"
        if (
            current is not None
            and self.pending is None
            and current.approvals
            and saga.approved(gate_step(decision.step))
        ):
            return f"step {decision.step!r} is already approved"
        return refusal(
            inp.approval,
            risk,
            inp.requested_by,
            decision.by,
            current.approvals if current else [],
        )
