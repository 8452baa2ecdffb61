"""Serving the gateway with uvicorn, stoppable from the same event loop."""

from __future__ import annotations

import asyncio

import uvicorn

from gateway.app import create_app
from models.settings import Settings


async def serve_gateway(
    settings: Settings, host: str, port: int, stop: asyncio.Event | None = None
) -> None:
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    # The caller owns signals (stanch dev stops everything together).
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    if stop is None:
        await serving
        return
    await asyncio.wait([serving, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    server.should_exit = True
    await serving
