"""Evidence capture: what the resource looked like and what it logged, kept
before anyone touches it, with a SHA-256 for the audit trail.

Files under STANCH_EVIDENCE_DIR by default; point it at mounted immutable
(WORM) storage in production.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity

from stanch.activities.monitor import MonitorActivities
from stanch.activities.resources import ResourceActivities
from stanch.models.azure import KqlQuery, ResourceId, ResourceRef
from stanch.models.runbook import EvidenceRef, EvidenceRequest


class EvidenceActivities:
    def __init__(
        self, resources: ResourceActivities, monitor: MonitorActivities, store: Path
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
        path = self._store / request.incident_id / name
        if path.exists():
            return _ref(name, path)
        snapshot = await self._resources.get_resource(ResourceRef(resource_id=rid.id))
        bundle = {
            "incident_id": request.incident_id,
            "captured_at": datetime.now(UTC).isoformat(),
            "resource": snapshot.model_dump(mode="json"),
        }
        if request.log_query:
            logs = await self._monitor.run_kql(
                KqlQuery(resource_id=rid.id, query=request.log_query, timespan=request.log_window)
            )
            bundle["logs"] = logs.model_dump(mode="json")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(bundle, indent=2, sort_keys=True, default=str))
        partial.replace(path)  # whole or absent: a crash mid-write leaves no half bundle
        return _ref(name, path)


def _ref(name: str, path: Path) -> EvidenceRef:
    data = path.read_bytes()
    return EvidenceRef(
        name=name,
        location=path.resolve().as_uri(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
