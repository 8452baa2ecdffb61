"""Quarantine a failed VM: keep it, isolate it, never delete it.

OE:08 asks that a failed resource be preserved for forensics rather than
discarded. The VM keeps running (its memory is evidence) but can no longer talk
to anything, cannot be deleted, and is labelled with the incident. Before the
isolation changes anything, its disks are snapshotted and its boot diagnostics
kept (`forensics: false` in the binding's params turns that off; a
`packet_capture` there adds a bounded capture): a capture that fails is on the
timeline and in the audit trail, and containment goes on without it.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.evidence import EvidenceActivities
    from stanch.activities.forensics import ForensicsActivities
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
    from stanch.models.forensics import ForensicsRequest, PacketCaptureRequest
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import RemediationRefused, Runbook

QUARANTINE_TAG = "stanch.quarantine"
# Snapshots and boot diagnostics before the isolation: new runs take them,
# runs recorded before (tests/histories/runbook_quarantine_vm*.json) replay
# without.
FORENSICS_PATCH = "quarantine-forensics"


class PacketCaptureParams(BaseModel):
    storage_account_id: str  # where Network Watcher writes the capture
    duration: timedelta = timedelta(minutes=5)


class QuarantineParams(BaseModel):
    # The failure must be confirmed before anything is touched: Resource Health
    # says so, or this query (run against the VM) returns rows.
    confirm_query: str | None = "Event | where EventLevelName == 'Error' | take 20"
    evidence_query: str | None = "Event | take 200"
    # Incremental disk snapshots and boot diagnostics, once approved and
    # before the isolation: never deleted, not even by a release.
    forensics: bool = True
    packet_capture: PacketCaptureParams | None = None


@workflow.defn(name="quarantine_vm")
class QuarantineVm(Runbook):
    spec = RunbookSpec(
        name="quarantine_vm",
        description="Confirm the failure, capture evidence, then (approved) snapshot its "
        "disks, keep its boot diagnostics, tag, lock and network-isolate the VM. Never deletes.",
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
        if workflow.patched(FORENSICS_PATCH) and params.forensics:
            await self._capture_forensics(params)

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

    async def _capture_forensics(self, params: QuarantineParams) -> None:
        """The VM's disks and boot diagnostics (and packets, if the policy
        says where to keep them), before the isolation changes anything. No
        undo: evidence outlives the quarantine. A capture that fails is
        recorded as such by the kit, and containment goes on: isolating a
        failing VM matters more than a complete record of it."""
        # These name only the VM: a VM outside remediation.scopes is refused
        # here as it would be by the isolation (RemediationRefused goes up).
        request = ForensicsRequest(incident_id=self.incident_id, resource_id=self.resource_id)
        try:
            await self.act(
                "capture forensics: disk snapshots", ForensicsActivities.snapshot_disks, request
            )
        except ActivityError:
            pass
        try:
            await self.act(
                "capture forensics: boot diagnostics",
                ForensicsActivities.fetch_boot_diagnostics,
                request,
            )
        except ActivityError:
            pass
        if params.packet_capture is not None:
            capture = PacketCaptureRequest(
                incident_id=self.incident_id,
                resource_id=self.resource_id,
                storage_account_id=params.packet_capture.storage_account_id,
                duration=params.packet_capture.duration,
            )
            try:
                await self.act(
                    "capture forensics: packet capture",
                    ForensicsActivities.start_packet_capture,
                    capture,
                )
            except (ActivityError, RemediationRefused):
                pass  # a storage account outside the scopes refuses the capture only
