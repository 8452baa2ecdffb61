"""Load generators: alerts POSTed to the gateway by a pool of concurrent HTTP
clients (keep-alive connections, no client library), and the same alerts sent
straight through the SDK, one signal-with-start each (the intake before
coalescing, without HTTP)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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
    """POST every body to the gateway; a 202 is a success.

    Each client is one keep-alive HTTP/1.1 connection written to and read from
    with asyncio streams: the load generator shares the machine with the stack
    it measures, and aiohttp's client took 0.2-0.3 ms of CPU per request, as
    much as a third of what the gateway is allowed."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST /alerts HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
    ).encode()
    requests = []  # serialised before the clock starts
    for body in bodies:
        payload = json.dumps(body).encode()
        requests.append(head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    run = Run()
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(index: int, connection: list[_Stream]) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(120):
                if not connection:
                    connection.append(await asyncio.open_connection(host, port))
                    connections.append(connection[0])
                reader, writer = connection[0]
                writer.write(requests[index])
                status, keep_alive = await _response(reader)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            run.failed(type(e).__name__)
            _close(connection)
            return
        if not keep_alive:
            _close(connection)
        if status == 202:
            run.latencies.append(time.perf_counter() - started)
        else:
            run.failed(f"HTTP {status}")

    try:
        run.seconds = await _pool_with(len(requests), concurrency, post)
    finally:
        for _, writer in connections:
            writer.close()
    return run


_Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the connection stays open); the body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep_alive = None, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep_alive = False
        elif name == "transfer-encoding":
            raise ValueError("chunked answer")  # the gateway always sends a length
    if length is None:
        raise ValueError("answer without Content-Length")
    await reader.readexactly(length)
    return status, keep_alive


def _close(connection: list[_Stream]) -> None:
    if connection:
        connection.pop()[1].close()


async def _pool_with(
    count: int, concurrency: int, call: Callable[[int, list[_Stream]], Awaitable[None]]
) -> float:
    """As _pool, each caller keeping one connection (a list holding it, or empty)."""
    next_index = 0

    async def caller() -> None:
        nonlocal next_index
        connection: list[_Stream] = []
        while next_index < count:
            index = next_index
            next_index += 1
            await call(index, connection)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(min(concurrency, count))))
    return time.perf_counter() - started


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
