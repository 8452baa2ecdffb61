"""Two different activities under one name, as two teams might write them."""

from __future__ import annotations

from temporalio import activity


@activity.defn(name="ping")
async def ping() -> str:
    return "pong"


@activity.defn(name="ping")
async def other_ping() -> str:
    return "pong, too"
