"""Evidence a runbook keeps before it changes anything: what to capture, and
where the captured bundle is, with the hash the audit trail records."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel


class EvidenceRequest(BaseModel):
    incident_id: str
    resource_id: str
    log_query: str | None = None  # KQL against the resource; None: no logs
    log_window: timedelta = timedelta(hours=1)


class EvidenceRef(BaseModel):
    name: str
    location: str  # where the evidence file is kept
    sha256: str
    size: int

    def summary_line(self) -> str:
        return f"{self.name}, {self.size} bytes, sha256 {self.sha256}"
