"""Load generators: alerts POSTed to the gateway by a pool of concurrent HTTP
clients, and the same alerts sent straight through the SDK, one
signal-with-start each (the intake before coalescing, without HTTP)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from temporalio.client import Client

from bench.stack import TOKEN
from stanch.client.alerts import only, record_alerts
from stanch.models.alert import AlertEvent, CommonAlert


@dataclass
class Run:
    """One pass of load: how long it took and each call's latency."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def failed(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


async def _pool(count: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> float:
    """Runs call(0..count-1) with at most `concurrency` in flight; wall seconds."""
    next_index = 0

    async def caller() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await call(index)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(min(concurrency, count))))
    return time.perf_counter() - started


async def post_alerts(url: str, bodies: Sequence[dict[str, Any]], concurrency: int) -> Run:
    """POST every body to the gateway; a 202 is a success."""
    payloads = [json.dumps(b).encode() for b in bodies]  # serialised before the clock starts
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    run = Run()
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def post(index: int) -> None:
            started = time.perf_counter()
            try:
                async with http.post(f"{url}/alerts", data=payloads[index], headers=headers) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as e:
                run.failed(type(e).__name__)
                return
            if status == 202:
                run.latencies.append(time.perf_counter() - started)
            else:
                run.failed(f"HTTP {status}")

        run.seconds = await _pool(len(payloads), concurrency, post)
    return run


def to_events(bodies: Sequence[dict[str, Any]]) -> list[tuple[str, AlertEvent]]:
    alerts = [CommonAlert.model_validate(b) for b in bodies]
    return [(a.fingerprint(), a.to_event()) for a in alerts]


async def signal_with_start_each(
    client: Client, task_queue: str, events: Sequence[tuple[str, AlertEvent]], concurrency: int
) -> Run:
    """The baseline: one signal-with-start per alert, exactly as the gateway
    sent them before coalescing, minus HTTP and parsing."""
    run = Run()

    async def send(index: int) -> None:
        incident_id, event = events[index]
        started = time.perf_counter()
        try:
            only(await record_alerts(client, task_queue, incident_id, [event]))
        except Exception as e:
            run.failed(type(e).__name__)
            return
        run.latencies.append(time.perf_counter() - started)

    run.seconds = await _pool(len(events), concurrency, send)
    return run
