"""The real stack of the `stack` fixture: the gateway (uvicorn) on loopback in
front of a worker on a fresh task queue of the dev server, with azuresim."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from stanch.azuresim import AzureSim
from stanch.harness.waiting import until_healthy
from stanch.models.settings import Settings

# The dev server of the tests suggests continue-as-new after this many events,
# so every long-lived incident continues as new for real.
CONTINUE_AS_NEW_AFTER = 60


@dataclass
class Stack:
    """A worker and the HTTP gateway on a fresh task queue of the dev server."""

    client: Client
    url: str
    token: str
    task_queue: str
    config: Path
    pages: Path
    sim: AzureSim

    async def post_alert(self, http: httpx.AsyncClient, body: Any, **kw: Any) -> httpx.Response:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        params = kw.pop("params", {"token": self.token})
        return await http.post(f"{self.url}/alerts", content=content, params=params, **kw)


@asynccontextmanager
async def gateway_at(settings: Settings, port: int) -> AsyncIterator[str]:
    """The real gateway (uvicorn) on loopback, healthy before the test goes on."""
    from stanch.gateway.server import serve_gateway

    stop = asyncio.Event()
    serving = asyncio.create_task(serve_gateway(settings, "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    try:
        await until_healthy(url, what=f"the gateway at {url}")
        yield url
    finally:
        stop.set()
        await serving
