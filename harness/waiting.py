"""Waiting for a condition rather than for a fixed time: a stack is ready when
it answers, and an assertion waits for what it asserts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 20,
    what: str = "the condition",
    *,
    every: float = 0.1,
    not_yet: tuple[type[BaseException], ...] = (),
) -> T:
    """The first truthy answer of `check`; an AssertionError naming `what` after
    `timeout` seconds. Errors of the `not_yet` types count as "not yet" (a
    server that is restarting answers with errors for a while); any other
    error is the answer."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            answer = await check()
            if answer:
                return answer
        except not_yet as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last error: {last!r})")
        await asyncio.sleep(every)


def wait_until(
    check: Callable[[], object], timeout: float = 60, what: str = "the condition"
) -> None:
    """`eventually` for callers without an event loop (`stanch demo`)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.25)


async def healthy(url: str) -> bool:
    """Whether a gateway (or anything with /healthz) answers 200 now."""
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            return (await http.get(f"{url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False


async def until_healthy(url: str, timeout: float = 30, what: str | None = None) -> None:
    await eventually(lambda: healthy(url), timeout, what or f"{url}/healthz", every=0.05)
