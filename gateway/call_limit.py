"""How many Temporal calls the gateway's intake has in flight at once, and who
goes next when that many are out.

During a storm every call the gateway makes is work for the Temporal service:
a signal-with-start, a history write, a workflow task. Unbounded, a storm of
closed-loop senders keeps the service saturated, and what it does for every
other incident waits in the same queues: an escalation timer fires late, a
page goes out late (docs/benchmarks.md, section 4). Bounded, the alerts that
arrive while the calls are out wait in their incident's queue and leave
together as a bigger batch (gateway/coalesce.py): the storm costs the service
fewer calls, and a timer's turn comes sooner. Nothing is answered before its
call returns, so a 202 still means recorded.

The calls waiting for a turn go in their incident's task priority (a Sev1
incident's alerts before a Sev4 storm's), then in arrival order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class CallLimit:
    def __init__(self, limit: int | None) -> None:
        """`limit`: calls in flight at most; None: no limit."""
        if limit is not None and limit < 1:
            raise ValueError(f"a call limit must be at least 1, not {limit}")
        self._limit = limit
        self._out = 0
        self._turns: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def in_flight(self) -> int:
        return self._out

    @property
    def waiting(self) -> int:
        return sum(1 for *_, turn in self._turns if not turn.done())

    def _queued(self) -> bool:
        return any(not turn.done() for *_, turn in self._turns)

    @asynccontextmanager
    async def turn(self, priority: int) -> AsyncIterator[bool]:
        """Held while one call is out; `priority` as Temporal's (1 goes first).
        Gives whether the call had to wait for its turn."""
        waited = self._limit is not None and (self._out >= self._limit or self._queued())
        if waited:
            mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._turns, (priority, next(self._arrivals), mine))
            try:
                await mine
            except BaseException:
                if mine.done() and not mine.cancelled():
                    self._out -= 1  # handed a turn as it was cancelled: pass it on
                    self._next()
                else:
                    mine.cancel()
                raise
        else:
            self._out += 1
        try:
            yield waited
        finally:
            self._out -= 1
            self._next()

    def _next(self) -> None:
        """Hand a free turn to the first call waiting for one."""
        while self._turns and (self._limit is None or self._out < self._limit):
            *_, turn = heapq.heappop(self._turns)
            if turn.done():  # its caller went away
                continue
            self._out += 1
            turn.set_result(None)
