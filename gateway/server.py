"""Serving the gateway with uvicorn, stoppable from the same event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import uvicorn

from stanch.gateway.app import create_app
from stanch.models.settings import Settings


async def serve_gateway(
    settings: Settings, host: str, port: int, stop: asyncio.Event | None = None
) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # X-Forwarded-Proto/For are believed only from the proxies listed in
        # FORWARDED_ALLOW_IPS (uvicorn's setting; loopback by default): behind
        # a TLS-terminating proxy the request's scheme is https, so the
        # dashboard's cookies are Secure.
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
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
