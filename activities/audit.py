"""Recording to the audit trail from a workflow (the trail itself: stores/audit)."""

from __future__ import annotations

from temporalio import activity

from stanch.models.audit import APPEND_ERRORS_METRIC, RECORD_AUDIT, AuditEntry, AuditReceipt
from stanch.stores.audit import AuditLog


class AuditActivities:
    def __init__(self, log: AuditLog) -> None:
        self._log = log

    @activity.defn(name=RECORD_AUDIT)
    async def record_audit(self, entry: AuditEntry) -> AuditReceipt:
        """Idempotent: keyed by workflow, run and activity id, which a retry
        keeps. The receipt it returns stays in the workflow's history, where
        `stanch audit verify` finds it to cross-check the store."""
        info = activity.info()
        key = f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
        try:
            return self._log.append(key, entry)
        except Exception:
            # Retried until it lands, so the workflow alone would never say
            # that the trail is refusing records: the metric does.
            activity.metric_meter().create_counter(
                APPEND_ERRORS_METRIC, "audit records that could not be appended (retried)"
            ).add(1, {"writer": "worker"})
            raise
