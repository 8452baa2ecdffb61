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
`await_recovery` ends a procedure by watching the resource get healthy again.

Runbooks import this package; its modules are private (the way
`temporalio.workflow` re-exports its own): `_kit` (the `Runbook` class),
`_saga` (step records, applied undos, evidence: pure), `_approval_gate` (the
decisions on each gate: pure), `_recovery` (`await_recovery`).
"""

from stanch.workflows.runbook._kit import (
    AUDIT_DECISIONS_PATCH,
    AZURE_RETRY,
    BOOKKEEPING,
    REMEDIATION_SCOPES_PATCH,
    SIGNED_DECISIONS_PATCH,
    ApprovalDenied,
    RemediationHalted,
    RemediationRefused,
    Runbook,
)
from stanch.workflows.runbook._recovery import RecoveryParams, await_recovery

__all__ = [
    "AUDIT_DECISIONS_PATCH",
    "AZURE_RETRY",
    "BOOKKEEPING",
    "REMEDIATION_SCOPES_PATCH",
    "SIGNED_DECISIONS_PATCH",
    "ApprovalDenied",
    "RecoveryParams",
    "RemediationHalted",
    "RemediationRefused",
    "Runbook",
    "await_recovery",
]
