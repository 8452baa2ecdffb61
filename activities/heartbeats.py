"""Heartbeats while an activity waits on Azure, so a worker that dies or is cut
off is noticed within the heartbeat timeout the workflow scheduled it with
(workflows/runbook/_kit.py: 20 s), and its activity retried on another worker,
instead of only when the start-to-close timeout (minutes) runs out.

Every wait on a long-running operation (LROPoller.result()) or a long query
goes through `heartbeating`: a heartbeat at once, then one every few seconds
until the wait is over. The SDK throttles what reaches the server (to 80 % of
the heartbeat timeout), so beating often costs nothing. A heartbeat's details
are the activity's progress, and each replaces the last: an activity whose
retry reads them (compute.py's power actions beat the operation's continuation
token, which a retry resumes) passes the same details to every heartbeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from azure.core.polling import AsyncLROPoller
from temporalio import activity

T = TypeVar("T")

# Well inside the shortest heartbeat timeout a workflow gives an Azure activity.
HEARTBEAT_EVERY = timedelta(seconds=5)


async def heartbeating(work: Awaitable[T], *details: Any, every: timedelta = HEARTBEAT_EVERY) -> T:
    """`work`'s result, heartbeating `details` meanwhile. Outside an activity
    (a store or a test calling an activity's helper directly) it only waits.
    A cancelled activity (Temporal tells it through a heartbeat's answer)
    cancels `work` with it."""
    if not activity.in_activity():
        return await work
    waiting = asyncio.ensure_future(work)
    try:
        activity.heartbeat(*details)
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=every.total_seconds())
            if done:
                return waiting.result()
            activity.heartbeat(*details)
    finally:
        waiting.cancel()


async def polled(poller: AsyncLROPoller[T], *details: Any) -> T:
    """The result of an Azure long-running operation, heartbeating until Azure
    says it is done."""
    return await heartbeating(poller.result(), *details)
