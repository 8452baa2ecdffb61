"""The audit trail's records: what is appended, and the receipt each append returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

# The activity type that appends to the trail. Its results in workflow
# histories are the receipts `stanch audit verify` cross-checks the store with.
RECORD_AUDIT = "record_audit"
# Counted by the worker (through Temporal's meter, which adds no suffix) and the
# gateway (prometheus_client, which adds `_total` and strips it from a name that
# has it): one name in both expositions, by `writer`.
APPEND_ERRORS_METRIC = "stanch_audit_append_errors_total"


class AuditEntry(BaseModel):
    """One fact for the audit trail: who did what to what, when, with what result."""

    incident_id: str | None
    actor: str
    action: str
    target: str | None = None
    outcome: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = None  # Azure's x-ms-request-id, when Azure was called
    at: datetime | None = None  # set by the workflow (workflow.now()) for replay safety


class AuditReceipt(BaseModel):
    seq: int
    hash: str
