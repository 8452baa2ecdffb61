"""The audit receipts kept in Temporal: the anchor outside this machine's files.

Every `record_audit` activity returns the receipt of its append (sequence number
and hash), and Temporal keeps that result in the workflow's history. So each
incident and runbook workflow holds the receipts of its own records, where
someone who can rewrite audit.db and the checkpoint file cannot reach. Reading
them back gives `stanch audit verify` one anchor per workflow record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory

from stanch.client.connection import connect
from stanch.models.audit import RECORD_AUDIT, AuditReceipt
from stanch.models.settings import Settings
from stanch.stores.audit.tampering import Anchor

CONNECT_SECONDS = 3.0
CONCURRENT_FETCHES = 8


class TemporalUnreachable(Exception):
    pass


@dataclass(frozen=True)
class ReceiptScan:
    histories: int  # workflow runs read
    receipts: list[Anchor]


async def fetch_receipts(settings: Settings) -> ReceiptScan:
    """The receipts in the history of every workflow run on our task queue."""
    try:
        # The CLI must not take the worker's metrics port.
        client = await asyncio.wait_for(
            connect(settings.model_copy(update={"metrics_address": None}), plugins=[]),
            CONNECT_SECONDS,
        )
    except (TimeoutError, RuntimeError, OSError) as e:
        why = "connection refused" if "refused" in str(e) else str(e)[:120] or "no answer"
        raise TemporalUnreachable(f"{settings.temporal_address} ({why})") from None
    queue = settings.task_queue.replace("\\", "\\\\").replace("'", "\\'")
    runs = [(w.id, w.run_id) async for w in client.list_workflows(f"TaskQueue = '{queue}'")]
    gate = asyncio.Semaphore(CONCURRENT_FETCHES)

    async def receipts_of(workflow_id: str, run_id: str | None) -> list[Anchor]:
        async with gate:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        return await _receipts_in(client, history, run_id or "")

    found = await asyncio.gather(*(receipts_of(w, r) for w, r in runs))
    return ReceiptScan(len(runs), [anchor for run in found for anchor in run])


async def _receipts_in(client: Client, history: WorkflowHistory, listed_run: str) -> list[Anchor]:
    run_id = _run_id(history.events) or listed_run
    scheduled: dict[int, str] = {}  # event id -> activity id
    receipts: list[Anchor] = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == RECORD_AUDIT:
                scheduled[event.event_id] = attrs.activity_id
        elif event.HasField("activity_task_completed_event_attributes"):
            done = event.activity_task_completed_event_attributes
            activity_id = scheduled.get(done.scheduled_event_id)
            if activity_id is None:
                continue
            (receipt,) = await client.data_converter.decode(done.result.payloads, [AuditReceipt])
            assert isinstance(receipt, AuditReceipt)
            receipts.append(
                Anchor(
                    receipt.seq,
                    receipt.hash,
                    f"the history of {history.workflow_id} (activity {activity_id})",
                    key=f"{history.workflow_id}/{run_id}/{activity_id}",
                )
            )
    return receipts


def _run_id(events: Sequence[HistoryEvent]) -> str:
    """The run id the activity saw: the first event names the run it started
    (kept across a reset, unlike the run id the run has now)."""
    if not events:
        return ""
    started = events[0].workflow_execution_started_event_attributes
    return started.original_execution_run_id
