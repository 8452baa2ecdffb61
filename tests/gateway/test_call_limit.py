"""The intake's bound on Temporal calls in flight (gateway/call_limit.py): never
more than the limit out, the waiting ones in priority then arrival order, and
a caller that goes away never keeps a turn."""

from __future__ import annotations

import asyncio

import pytest

from stanch.gateway.call_limit import CallLimit


async def test_never_more_calls_out_than_the_limit() -> None:
    limit = CallLimit(3)
    out, most = 0, 0

    async def call() -> None:
        nonlocal out, most
        async with limit.turn(3):
            out += 1
            most = max(most, out)
            await asyncio.sleep(0.001)
            out -= 1

    await asyncio.gather(*(call() for _ in range(50)))
    assert most == 3
    assert limit.in_flight == 0 and limit.waiting == 0


async def test_waiting_calls_go_by_priority_then_arrival() -> None:
    limit = CallLimit(1)
    release = asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with limit.turn(4) as waited:
            assert not waited
            await release.wait()

    async def call(name: str, priority: int) -> None:
        async with limit.turn(priority) as waited:
            assert waited
            order.append(name)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    calls = [
        asyncio.create_task(call(name, priority))
        for name, priority in [
            ("sev4-a", 4),
            ("sev3", 3),
            ("sev1-a", 1),
            ("sev4-b", 4),
            ("sev1-b", 1),
        ]
    ]
    await asyncio.sleep(0)
    assert limit.waiting == 5 and order == []
    release.set()
    await asyncio.gather(held, *calls)
    assert order == ["sev1-a", "sev1-b", "sev3", "sev4-a", "sev4-b"]


async def test_a_caller_that_goes_away_keeps_no_turn() -> None:
    limit = CallLimit(1)
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.turn(3):
            await release.wait()

    async def call() -> str:
        async with limit.turn(3):
            return "sent"

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    gone = asyncio.create_task(call())
    await asyncio.sleep(0)
    gone.cancel()  # waiting for its turn
    release.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await gone
    # The turn it would have had is free: the next call goes at once.
    assert await asyncio.wait_for(call(), 1) == "sent"
    assert limit.in_flight == 0


async def test_cancelled_just_as_its_turn_came_passes_the_turn_on() -> None:
    limit = CallLimit(1)
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.turn(3):
            await release.wait()

    async def call() -> str:
        async with limit.turn(3):
            return "sent"

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    handed = asyncio.create_task(call())
    after = asyncio.create_task(call())
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder's exit hands its turn to `handed`...
    assert held.done() and limit.in_flight == 1
    handed.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert await asyncio.wait_for(after, 1) == "sent"
    assert limit.in_flight == 0


async def test_no_limit_never_waits() -> None:
    limit = CallLimit(None)
    entered = 0

    async def call() -> None:
        nonlocal entered
        async with limit.turn(3):
            entered += 1
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(call()) for _ in range(200)]
    await asyncio.sleep(0.005)
    assert limit.in_flight == 200 and entered == 200
    await asyncio.gather(*tasks)


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CallLimit(0)
