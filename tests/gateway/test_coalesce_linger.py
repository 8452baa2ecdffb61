"""Coalescing harder as load grows: once an incident's calls carry several
alerts, its next batch waits (at most the linger, never longer than the last
call took) for as many alerts as its last two batches held; a lone alert for
an idle incident never waits. In-process, with a send whose calls the test
holds and releases one by one."""

from __future__ import annotations

import asyncio
import time

from stanch.gateway.coalesce import Coalescer
from stanch.harness.waiting import eventually

HELD = 1.0  # how long the second call is held: the linger may last that long


class HeldSend:
    """A send whose n-th call (from 1) returns only once `release(n)` was called."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gates: dict[int, asyncio.Event] = {}

    def gate(self, number: int) -> asyncio.Event:
        return self.gates.setdefault(number, asyncio.Event())

    def release(self, number: int) -> None:
        self.gate(number).set()

    async def __call__(self, key: str, items: list[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await self.gate(len(self.batches)).wait()
        return [i * 10 for i in items]

    async def sent(self, count: int) -> None:
        async def gone() -> bool:
            return len(self.batches) >= count

        await eventually(gone, 5, f"{count} batches sent", every=0.005)


async def queued(coalescer: Coalescer[int, int], key: str, item: int) -> asyncio.Task[int]:
    """Submits `item`; returns once the coalescer holds it (submit queues before it awaits)."""
    task = asyncio.create_task(coalescer.submit(key, item))
    await asyncio.sleep(0)
    return task


async def two_batches_then_one_waiting(
    send: HeldSend, coalescer: Coalescer[int, int]
) -> list[asyncio.Task[int]]:
    """[0] alone, then [1, 2] held for HELD seconds while 3 queues behind it."""
    tasks = [await queued(coalescer, "fp", 0)]
    await send.sent(1)
    tasks += [await queued(coalescer, "fp", i) for i in (1, 2)]
    send.release(1)
    await send.sent(2)
    tasks.append(await queued(coalescer, "fp", 3))
    await asyncio.sleep(HELD)  # the call's duration, which bounds the linger
    send.release(2)
    return tasks


async def test_a_busy_incident_waits_for_as_many_alerts_as_its_last_two_batches():
    send = HeldSend()
    coalescer: Coalescer[int, int] = Coalescer(send, linger=30)
    tasks = await two_batches_then_one_waiting(send, coalescer)
    # [1, 2] returned with only 3 queued: the next batch waits for 1 + 2 alerts.
    tasks += [await queued(coalescer, "fp", i) for i in (4, 5)]
    await send.sent(3)
    assert send.batches == [[0], [1, 2], [3, 4, 5]]
    send.release(3)
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40, 50]

    async def idle() -> bool:  # after lingering once more, no longer than that call took
        return coalescer.in_flight == 0

    await eventually(idle, 5, "the incident's sender finished")


async def test_the_wait_ends_at_the_linger_when_nobody_else_comes():
    send = HeldSend()
    coalescer: Coalescer[int, int] = Coalescer(send, linger=0.05)
    tasks = await two_batches_then_one_waiting(send, coalescer)
    await send.sent(3)  # 3 went on its own once the linger was over
    assert send.batches == [[0], [1, 2], [3]]
    send.release(3)
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30]


async def test_a_lone_alert_for_an_idle_incident_never_waits():
    send = HeldSend()
    for number in range(1, 4):
        send.release(number)
    coalescer: Coalescer[int, int] = Coalescer(send, linger=30)
    started = time.monotonic()
    assert await coalescer.submit("fp", 7) == 70
    assert await coalescer.submit("fp", 8) == 80
    assert time.monotonic() - started < HELD, "a lone alert must not linger"
    assert send.batches == [[7], [8]]


async def test_without_a_linger_nothing_waits():
    send = HeldSend()
    send.release(3)
    coalescer: Coalescer[int, int] = Coalescer(send)
    tasks = await two_batches_then_one_waiting(send, coalescer)
    await send.sent(3)
    assert send.batches == [[0], [1, 2], [3]]
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30]
