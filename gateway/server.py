"""Serving the gateway with uvicorn, stoppable from the same event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from gateway.app import create_app
from models.settings import Settings


async def serve_gateway(
    settings: Settings, host: str, port: int, stop: asyncio.Event | None = None
) -> None:
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", access_log=False
    )
    server = _QuietServer(config) if stop is not None else uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    if stop is None:
        await serving
        return
    await asyncio.wait([serving, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    server.should_exit = True
    await serving


class _QuietServer(uvicorn.Server):
    """Leaves signals to the caller, which stops the gateway together with the
    worker and the Temporal server (uvicorn would otherwise take SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
