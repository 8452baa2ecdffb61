"""Evidence capture: read the resource (and its logs) from Azure, keep the
bundle in the evidence store (stores/evidence.py: files, or a Blob container)
before anyone touches it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from stanch.activities.azure_errors import azure_call
from stanch.activities.heartbeats import heartbeating
from stanch.activities.monitor import MonitorActivities
from stanch.activities.resources import ResourceActivities
from stanch.models.azure import KqlQuery, ResourceId, ResourceRef
from stanch.models.evidence import EvidenceRef, EvidenceRequest
from stanch.stores.evidence import EvidenceConflict, EvidenceKeeper


class EvidenceActivities:
    def __init__(
        self, resources: ResourceActivities, monitor: MonitorActivities, store: EvidenceKeeper
    ) -> None:
        self._resources = resources
        self._monitor = monitor
        self._store = store

    @activity.defn
    async def capture_evidence(self, request: EvidenceRequest) -> EvidenceRef:
        """Idempotent: one bundle per incident and resource; a retry that finds
        the bundle already written returns it rather than capturing anew (a
        second capture would differ, and the first is the one that counts).
        Two attempts racing (a worker cut off, not dead) both capture; the
        store keeps the first, and the second returns it."""
        rid = ResourceId.parse(request.resource_id)
        name = f"{rid.name}.json"
        # The stores block (disk, or the Storage SDK's HTTP): off the event loop.
        where = f"evidence {name} of incident {request.incident_id}"
        async with azure_call(f"read {where}"):
            kept = await heartbeating(
                asyncio.to_thread(self._store.find, request.incident_id, name)
            )
        if kept is not None:
            return kept
        snapshot = await heartbeating(self._resources.get_resource(ResourceRef(resource_id=rid.id)))
        bundle: dict[str, Any] = {
            "incident_id": request.incident_id,
            "captured_at": datetime.now(UTC).isoformat(),
            "resource": snapshot.model_dump(mode="json"),
        }
        if request.log_query:
            logs = await self._monitor.run_kql(
                KqlQuery(resource_id=rid.id, query=request.log_query, timespan=request.log_window)
            )
            bundle["logs"] = logs.model_dump(mode="json")
        try:
            async with azure_call(f"keep {where}"):
                return await heartbeating(
                    asyncio.to_thread(self._store.keep, request.incident_id, name, bundle)
                )
        except EvidenceConflict as e:
            activity.logger.warning("%s; the first capture counts", e)
            return e.kept
