"""The gateway's alert records on the audit trail, written as group commits.

One SQLite transaction per alert costs a disk sync each and, run on the event
loop, stalled every other request for its duration: under an alert storm it,
not Temporal, set the gateway's pace. Records that arrive while a write is in
flight are written together in the next transaction, off the event loop; each
caller still returns only once its own record is on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import Counter

from stanch.gateway.coalesce import Coalescer
from stanch.models.audit import APPEND_ERRORS_METRIC, AuditEntry, AuditReceipt
from stanch.stores.select import AuditTrail

Record = tuple[str, AuditEntry]
APPEND_ERRORS = Counter(
    APPEND_ERRORS_METRIC, "audit records that could not be appended", ["writer"]
)


class AlertAuditTrail:
    def __init__(self, log: AuditTrail) -> None:
        self._log = log
        # One key: the hash chain is a single sequence, one writer at a time.
        self._writes: Coalescer[Record, AuditReceipt] = Coalescer(
            self._write, max_items=1000, max_bytes=1 << 62
        )

    async def append(self, key: str, entry: AuditEntry) -> AuditReceipt:
        try:
            return await self._writes.submit("audit", (key, entry))
        except Exception:
            APPEND_ERRORS.labels("gateway").inc()
            raise

    async def _write(self, _: str, records: list[Record]) -> Sequence[AuditReceipt]:
        return await asyncio.to_thread(self._log.append_many, records)
