"""Group commit for alert intake: one Temporal call carries every alert that
arrived for an incident while the previous call was in flight.

An alert storm is many alerts for few incidents. Sent one signal each, every
alert pays a round trip to Temporal and a history event, and calls for the
same workflow queue behind each other on the server anyway. Here each key (an
incident's fingerprint) has a queue: when nothing is in flight for it, the
first item goes out at once (after an optional short linger window); items
that arrive meanwhile wait and leave together as the next batch when the call
returns. Each caller is answered only when the batch carrying its item was
sent, with its own result or the batch's error, so nothing is acknowledged
that was not recorded. One batch at a time per key keeps arrival order.

Harder as load grows: once a key's calls carry more than one item, the next
batch waits (at most `linger`, and never longer than the last call took) for
as many items as the last two batches held. Closed-loop senders (each sends
its next alert when the last is answered) otherwise settle into two half
batches taking turns; one full batch costs Temporal half the calls. A lone
item for an idle key never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A send returns, for each item of its batch in order, the item's result or
# the exception that item's caller should see (a batch can fail part-way).
Send = Callable[[str, list[Item]], Awaitable[Sequence[Result | BaseException]]]


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    size: int
    answer: asyncio.Future[Result]


# The most alerts one call carries: applying a batch is one workflow task,
# which must stay well inside the SDK's 2 s deadlock limit on a loaded worker.
MAX_BATCH_ITEMS = 100


class Coalescer(Generic[Item, Result]):
    def __init__(
        self,
        send: Send[Item, Result],
        *,
        window: float = 0.0,
        max_items: int = MAX_BATCH_ITEMS,
        max_bytes: int = 256 * 1024,
        linger: float = 0.0,
    ) -> None:
        """`window`: seconds the first item of an idle key waits for company.
        `max_items` / `max_bytes` bound one batch (Temporal refuses payloads
        over 2 MB and warns from 512 KB); an item larger than `max_bytes`
        still goes, alone. `linger`: seconds a busy key's next batch may wait
        for company (0: never)."""
        self._send = send
        self._window = window
        self._linger = linger
        self._max_items = max(1, max_items)
        self._max_bytes = max_bytes
        self._queues: dict[str, deque[_Waiting[Item, Result]]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        # key -> (items the lingering batch waits for, set when they are queued)
        self._wanted: dict[str, tuple[int, asyncio.Future[None]]] = {}

    async def submit(self, key: str, item: Item, size: int = 0) -> Result:
        """Returns once the batch carrying `item` was sent; raises its error."""
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(key, deque())
        queue.append(_Waiting(item, size, answer))
        wanted = self._wanted.get(key)
        if wanted is not None and len(queue) >= wanted[0] and not wanted[1].done():
            wanted[1].set_result(None)
        if key not in self._senders:
            self._senders[key] = asyncio.create_task(self._drain(key), name=f"coalesce {key}")
        # A caller that goes away (client disconnect) cancels only its wait:
        # its item still goes out, which at-least-once delivery allows.
        return await answer

    @property
    def in_flight(self) -> int:
        """Keys with a sender running (for tests and metrics)."""
        return len(self._senders)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        batch: list[_Waiting[Item, Result]] = []
        try:
            if self._window > 0:
                await asyncio.sleep(self._window)
            sizes, took = (0, 0), 0.0
            while True:
                if sizes[1] > 1 and self._linger > 0:
                    wanted = min(sum(sizes), self._max_items)
                    await self._company(key, queue, wanted, min(self._linger, took))
                if not queue:
                    break
                batch = self._take(queue)
                started = time.monotonic()
                await self._deliver(key, batch)
                sizes, took = (sizes[1], len(batch)), time.monotonic() - started
                batch = []
        except BaseException as e:
            # Cancelled (the gateway is stopping): nobody may wait forever,
            # and nothing still queued was recorded.
            stopped = RuntimeError(f"alert intake stopped: {type(e).__name__}")
            for waiting in [*batch, *queue]:
                _answer(waiting.answer, stopped)
            queue.clear()
            raise
        finally:
            del self._senders[key]
            if not queue:
                del self._queues[key]

    async def _company(
        self, key: str, queue: deque[_Waiting[Item, Result]], wanted: int, seconds: float
    ) -> None:
        """Until `wanted` items are queued for `key`, or `seconds` pass."""
        if len(queue) >= wanted or seconds <= 0:
            return
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wanted[key] = (wanted, arrived)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await arrived
        finally:
            del self._wanted[key]

    def _take(self, queue: deque[_Waiting[Item, Result]]) -> list[_Waiting[Item, Result]]:
        batch = [queue.popleft()]
        size = batch[0].size
        while queue and len(batch) < self._max_items and size + queue[0].size <= self._max_bytes:
            size += queue[0].size
            batch.append(queue.popleft())
        return batch

    async def _deliver(self, key: str, batch: list[_Waiting[Item, Result]]) -> None:
        try:
            outcomes = await self._send(key, [w.item for w in batch])
        except Exception as e:
            # Temporal unreachable, or refused the call: the whole batch is
            # unrecorded, so every caller in it gets the error (and retries).
            for waiting in batch:
                _answer(waiting.answer, e)
            return
        if len(outcomes) != len(batch):
            wrong = RuntimeError(f"send answered {len(outcomes)} of {len(batch)} alerts")
            for waiting in batch:
                _answer(waiting.answer, wrong)
            return
        for waiting, outcome in zip(batch, outcomes, strict=True):
            _answer(waiting.answer, outcome)


def _answer(answer: asyncio.Future[Result], outcome: Result | BaseException) -> None:
    if answer.done():  # the caller stopped waiting
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
