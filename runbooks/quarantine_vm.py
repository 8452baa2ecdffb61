"""Quarantine a failed VM: keep it, isolate it, never delete it.

OE:08 asks that a failed resource be preserved for forensics rather than
discarded. The VM keeps running (its memory is evidence) but can no longer talk
to anything, cannot be deleted, and is labelled with the incident.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.evidence import EvidenceActivities
    from stanch.activities.health import HealthActivities
    from stanch.activities.locks import LockActivities
    from stanch.activities.monitor import MonitorActivities
    from stanch.activities.network import NetworkActivities
    from stanch.activities.resources import ResourceActivities
    from stanch.models.azure import (
        KqlQuery,
        LockRemoval,
        LockRequest,
        QuarantineRequest,
        ResourceRef,
        TagChange,
        TagRemoval,
    )
    from stanch.models.config import AlertMatch
    from stanch.models.evidence import EvidenceRequest
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import Runbook

QUARANTINE_TAG = "stanch.quarantine"


class QuarantineParams(BaseModel):
    # The failure must be confirmed before anything is touched: Resource Health
    # says so, or this query (run against the VM) returns rows.
    confirm_query: str | None = "Event | where EventLevelName == 'Error' | take 20"
    evidence_query: str | None = "Event | take 200"


@workflow.defn(name="quarantine_vm")
class QuarantineVm(Runbook):
    spec = RunbookSpec(
        name="quarantine_vm",
        description="Confirm the failure, capture evidence, then (approved) tag, lock "
        "and network-isolate the VM. Never deletes.",
        risk=Risk.HIGH,
        author="stanch",
        matches=AlertMatch(
            resource_types=["microsoft.compute/virtualmachines"],
            monitoring_services=["Resource Health"],
        ),
        approvals={"isolate": Risk.HIGH},
        outcome=RunbookOutcome.CONTAINED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        params = self.parameters(QuarantineParams)
        vm = ResourceRef(resource_id=self.resource_id)
        health = await self.step(
            "confirm failure (Resource Health)", HealthActivities.get_availability, vm
        )
        if health.state == "Available" and params.confirm_query:
            errors = await self.step(
                "confirm failure (logs)",
                MonitorActivities.run_kql,
                KqlQuery(resource_id=self.resource_id, query=params.confirm_query),
            )
            if not any(t.rows for t in errors.tables):
                return RunbookOutcome.NOT_NEEDED
        await self.step(
            "capture evidence",
            EvidenceActivities.capture_evidence,
            EvidenceRequest(
                incident_id=self.incident_id,
                resource_id=self.resource_id,
                log_query=params.evidence_query,
            ),
        )
        await self.approval("isolate")

        tag = {QUARANTINE_TAG: self.incident_id}
        await self.act(
            "tag as quarantined",
            ResourceActivities.merge_tags,
            TagChange(resource_id=self.resource_id, tags=tag),
            undo=lambda _: (
                ResourceActivities.remove_tags,
                TagRemoval(resource_id=self.resource_id, names=[QUARANTINE_TAG]),
            ),
        )
        lock = f"stanch-{self.incident_id}"
        await self.act(
            "lock against deletion",
            LockActivities.place_lock,
            LockRequest(
                scope=self.resource_id,
                name=lock,
                level="CanNotDelete",
                notes=f"Quarantined by stanch for incident {self.incident_id}",
            ),
            undo=lambda _: (
                LockActivities.remove_lock,
                LockRemoval(scope=self.resource_id, name=lock),
            ),
        )
        isolated = await self.act(
            "isolate network",
            NetworkActivities.quarantine_network,
            QuarantineRequest(resource_id=self.resource_id, incident_id=self.incident_id),
            undo=lambda record: (NetworkActivities.release_quarantine, record),
        )
        if isolated is not None:
            check = await self.step(
                "verify isolation", NetworkActivities.verify_quarantine, isolated
            )
            if not check.isolated:
                raise ApplicationError(
                    "; ".join(check.problems), type="NotIsolated", non_retryable=True
                )
        return RunbookOutcome.CONTAINED
