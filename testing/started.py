"""Workflows a test started, terminated when it ends (stanch's `started` fixture,
the plugin's `stanch_started`).

Left running, they would keep scheduling work for workers that are gone, and
the time-skipping server does not skip time past pending work: the next test
would hang. Helpers that start workflows take the test's `Started` and add
what they start to it."""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle

Handle = TypeVar("Handle", bound=WorkflowHandle[Any, Any])


class Started:
    def __init__(self) -> None:
        self.handles: list[WorkflowHandle[Any, Any]] = []

    def add(self, handle: Handle) -> Handle:
        self.handles.append(handle)
        return handle

    async def terminate_all(self) -> None:
        while self.handles:
            with contextlib.suppress(Exception):  # finished already, or its server is gone
                await self.handles.pop().terminate("test finished")
