"""The baseline for the approval benchmark: a trivial workflow that waits for
one update, on its own worker process, so 'N waiting workflows, then N
updates' can be measured with none of stanch's work around it.

`python -m bench.baseline_worker ADDRESS TASK_QUEUE` runs until interrupted.
"""

from __future__ import annotations

import asyncio
import sys

from temporalio import workflow
from temporalio.worker import Worker


@workflow.defn(name="BenchGate")
class Gate:
    def __init__(self) -> None:
        self._approved_by: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._approved_by is not None)
        assert self._approved_by is not None
        return self._approved_by

    @workflow.query
    def waiting(self) -> bool:
        return self._approved_by is None

    @workflow.update
    def approve(self, by: str) -> str:
        self._approved_by = by
        return by


async def main(address: str, task_queue: str) -> None:
    from bench.stack import connect  # outside the workflow module's sandboxed imports

    client = await connect(address)
    async with Worker(client, task_queue=task_queue, workflows=[Gate]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except KeyboardInterrupt:
        pass
