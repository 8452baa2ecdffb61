"""What the whole fleet looks like, measured when Prometheus scrapes the gateway.

Counters kept by one process (pages sent, runbook outcomes) live where the
event happens. The facts on-call alerts on are states of the fleet instead:
is the kill switch engaged, are incidents open, is an approval overdue, is any
worker polling. No single worker knows them, and a worker that is down cannot
say it is missing, so the gateway reads them from the toggle store and from
Temporal at scrape time. Every gateway reports the same values; the alerting
rules (ops/prometheus) take the max over gateways.

A scrape never waits for Temporal: it answers with the last values read and,
when they are older than REFRESH_SECONDS, starts one read in the background
(so however often /metrics is hit, and it needs no credential, Temporal is
asked at most once per REFRESH_SECONDS). A read that fails or takes longer
than REFRESH_WAIT keeps the previous values and says so in
`stanch_fleet_view_up`; `stanch_fleet_view_age_seconds` says how old they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import Gauge
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from stanch.client.incidents import listing_query, open_incidents
from stanch.models.risk import Risk
from stanch.models.severity import Severity
from stanch.stores.toggles import ToggleStore

REFRESH_SECONDS = 10.0
REFRESH_WAIT = 8.0
OPEN_INCIDENTS_ASKED = 200  # incidents whose pending approvals are read per refresh
# Temporal lists a poller for minutes after its worker is gone; an idle worker
# polls again at least every ~70 s (its long poll), so older means not polling.
POLLER_FRESH = timedelta(seconds=90)

log = logging.getLogger("stanch.gateway.fleet")

KILL_SWITCH_ENGAGED = Gauge(
    "stanch_kill_switch_engaged",
    "1 while all remediation is switched off on purpose (stanch toggle remediation off)",
)
RUNBOOK_SWITCHED_OFF = Gauge(
    "stanch_runbook_switched_off", "1 for each runbook switched off by name", ["runbook"]
)
INCIDENTS_OPEN = Gauge(
    "stanch_incidents_open", "incidents open now, by severity (Temporal visibility)", ["severity"]
)
APPROVALS_WAITING = Gauge(
    "stanch_approvals_waiting", "approvals a runbook is waiting for, by risk", ["risk"]
)
APPROVALS_OVERDUE = Gauge(
    "stanch_approvals_overdue",
    "approvals still shown as waiting after their deadline (denied by default): the "
    "runbook is not being run",
    ["risk"],
)
TASK_QUEUE_POLLERS = Gauge(
    "stanch_task_queue_pollers",
    "workers polling stanch's task queue now, as Temporal sees them",
    ["task_queue", "kind"],
)
FLEET_VIEW_UP = Gauge(
    "stanch_fleet_view_up", "1 when the last read of the fleet's state from Temporal succeeded"
)
FLEET_VIEW_AGE = Gauge(
    "stanch_fleet_view_age_seconds", "seconds since the fleet's state was last read from Temporal"
)

QUEUE_KINDS = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


class FleetMetrics:
    def __init__(
        self,
        client: Callable[[], Awaitable[Client]],
        toggles: ToggleStore,
        task_queue: str,
    ) -> None:
        self._client, self._toggles, self._task_queue = client, toggles, task_queue
        self._read_at: float | None = None  # monotonic time of the last good read
        self._tried_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    async def measure(self) -> None:
        """Brings the gauges up to date for a scrape (the Temporal ones as of
        the last read, see the module docstring)."""
        await asyncio.to_thread(self._measure_kill_switch)
        idle = self._refreshing is None or self._refreshing.done()
        if idle and time.monotonic() - self._tried_at >= REFRESH_SECONDS:
            self._tried_at = time.monotonic()
            self._refreshing = asyncio.create_task(self._refresh())
        if self._read_at is not None:
            FLEET_VIEW_AGE.set(time.monotonic() - self._read_at)

    async def close(self) -> None:
        """At the gateway's shutdown: a read in flight is abandoned."""
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing

    def _measure_kill_switch(self) -> None:
        # view() reads the store, which also sets stanch_kill_switch_unreadable.
        view = self._toggles.view()
        KILL_SWITCH_ENGAGED.set(1 if view.readable and view.remediation_halted else 0)
        RUNBOOK_SWITCHED_OFF.clear()
        for runbook, switch in view.runbooks.items():
            if not switch.enabled:
                RUNBOOK_SWITCHED_OFF.labels(runbook).set(1)

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(REFRESH_WAIT):
                client = await self._client()
                await asyncio.gather(
                    self._count_open(client), self._count_pollers(client), self._approvals(client)
                )
        except Exception as e:  # the scrape must answer whatever Temporal does
            FLEET_VIEW_UP.set(0)
            log.warning("fleet metrics not refreshed: %s", f"{type(e).__name__}: {e}"[:300])
            return
        FLEET_VIEW_UP.set(1)
        self._read_at = time.monotonic()

    async def _count_open(self, client: Client) -> None:
        async def count(severity: Severity) -> tuple[Severity, int]:
            query = listing_query(running_only=True, severity=severity)
            return severity, (await client.count_workflows(query)).count

        for severity, n in await asyncio.gather(*(count(s) for s in Severity)):
            INCIDENTS_OPEN.labels(str(severity)).set(n)

    async def _count_pollers(self, client: Client) -> None:
        fresh_since = datetime.now(UTC) - POLLER_FRESH
        for kind, queue_type in QUEUE_KINDS.items():
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=self._task_queue),
                    task_queue_type=queue_type,
                )
            )
            workers = {
                p.identity
                for p in answer.pollers
                if p.last_access_time.ToDatetime(UTC) >= fresh_since
            }
            TASK_QUEUE_POLLERS.labels(self._task_queue, kind).set(len(workers))

    async def _approvals(self, client: Client) -> None:
        now = datetime.now(UTC)
        waiting: Counter[str] = Counter()
        overdue: Counter[str] = Counter()
        for detail in await open_incidents(client, limit=OPEN_INCIDENTS_ASKED):
            for pending in detail.state.pending_approvals:
                waiting[str(pending.risk)] += 1
                if pending.deadline < now:
                    overdue[str(pending.risk)] += 1
        for risk in Risk:  # every risk, zeros too: a dashboard shows 0, not "no data"
            APPROVALS_WAITING.labels(str(risk)).set(waiting[str(risk)])
            APPROVALS_OVERDUE.labels(str(risk)).set(overdue[str(risk)])
