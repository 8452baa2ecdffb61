"""The real stack of the `stack` fixture: the gateway (uvicorn) on loopback in
front of a worker on a fresh task queue of the dev server, with azuresim."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.harness.ports import free_port
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


def stack_settings(
    env: WorkflowEnvironment,
    state_dir: Path,
    task_queue: str,
    config: Path,
    alert_token: str,
    port: int,
    **more: Any,
) -> Settings:
    """What the worker and gateway of a test's stack run with: the dev
    server's address, a gateway on `port`, its state under `state_dir`."""
    return Settings(
        temporal_address=env.client.service_client.config.target_host,
        task_queue=task_queue,
        config=config,
        alert_token=SecretStr(alert_token),
        state_dir=state_dir,
        gateway_url=f"http://127.0.0.1:{port}",
        **more,
    )


@asynccontextmanager
async def running_stack(
    env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    config: Path,
    azure: AzureClients,
    sim: AzureSim,
    token: str | None = None,
) -> AsyncIterator[Stack]:
    """A worker and the gateway in this process, until the block ends."""
    from stanch.worker import build_worker

    token = token or secrets.token_urlsafe(16)
    port = free_port()
    settings = stack_settings(env, tmp_path, task_queue, config, token, port)
    async with build_worker(env.client, settings, azure), gateway_at(settings, port) as url:
        yield Stack(env.client, url, token, task_queue, config, tmp_path / "pages.jsonl", sim)
