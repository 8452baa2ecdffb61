"""Evidence capture: read the resource (and its logs) from Azure, keep the
bundle in the evidence store (stores/evidence.py) before anyone touches it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from stanch.activities.monitor import MonitorActivities
from stanch.activities.resources import ResourceActivities
from stanch.models.azure import KqlQuery, ResourceId, ResourceRef
from stanch.models.evidence import EvidenceRef, EvidenceRequest
from stanch.stores.evidence import EvidenceStore


class EvidenceActivities:
    def __init__(
        self, resources: ResourceActivities, monitor: MonitorActivities, store: EvidenceStore
    ) -> None:
        self._resources = resources
        self._monitor = monitor
        self._store = store

    @activity.defn
    async def capture_evidence(self, request: EvidenceRequest) -> EvidenceRef:
        """Idempotent: one bundle per incident and resource; a retry that finds
        the bundle already written returns it rather than capturing anew (a
        second capture would differ, and the first is the one that counts)."""
        rid = ResourceId.parse(request.resource_id)
        name = f"{rid.name}.json"
        if (kept := self._store.find(request.incident_id, name)) is not None:
            return kept
        snapshot = await self._resources.get_resource(ResourceRef(resource_id=rid.id))
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
        return self._store.keep(request.incident_id, name, bundle)
