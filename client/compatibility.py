"""Will the code about to be deployed carry on the workflows already running?
Each running (and recently closed: `stanch show` replays those too) execution
of every workflow type the worker registers is replayed from its history
against the new code, as the worker would, before it is deployed. An
instance that would break is named with the worker's own words, so the fix
(`workflow.patched`) comes before the incident gets stuck, not after. An
execution this process cannot read (sealed under a payload key it does not
hold) is named apart, with the key id: it was not checked, so it is not a
verdict on the code, and neither is it a pass."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import worker as temporal_worker
from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.converter import PayloadCodec
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Replayer

from stanch.client.errors import InvalidQuery, Unavailable
from stanch.client.sealed_histories import unreadable_because
from stanch.runbooks.registry import runbook_workflows
from stanch.workflows.detector import DetectorWorkflow
from stanch.workflows.incident import IncidentWorkflow

HISTORIES_AT_ONCE = 4  # fetched in flight: each may be thousands of events
PER_TYPE_DEFAULT = 200


class Breakage(BaseModel):
    """One execution the new code cannot replay."""

    workflow_id: str
    run_id: str
    workflow_type: str
    running: bool  # a running one gets stuck at its next workflow task
    message: str  # e.g. "[TMPRL1100] Nondeterminism error: ..."


class Unreadable(BaseModel):
    """One execution whose history this process cannot open: not replayed,
    so nothing is known of how the new code would carry it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    running: bool
    reason: str  # the codec's words: the key id, and which ids this process holds


class TypeChecked(BaseModel):
    workflow_type: str
    checked: int
    matching: int  # executions the window holds: more than `checked` when capped

    @property
    def capped(self) -> bool:
        return self.matching > self.checked


class CompatibilityReport(BaseModel):
    closed_since: datetime
    types: list[TypeChecked]
    broken: list[Breakage]
    unreadable: list[Unreadable] = []

    @property
    def checked(self) -> int:
        return sum(t.checked for t in self.types)


def workflow_name(cls: type) -> str:
    defn = getattr(cls, "__temporal_workflow_definition", None)
    name = getattr(defn, "name", None)
    if not name:
        raise TypeError(f"{cls.__qualname__} is not a workflow class")
    return str(name)


def deployed_workflows(packages: Sequence[str] = (), replacing: Sequence[type] = ()) -> list[type]:
    """What the worker registers (the incident, the detector, every runbook
    of stanch, of installed packages and of the policy's `packages`), with
    `replacing` taking the place of the class registered under the same
    workflow name: the code about to be deployed, when it is not installed."""
    by_name = {
        workflow_name(cls): cls
        for cls in [IncidentWorkflow, DetectorWorkflow, *runbook_workflows(packages)]
    }
    by_name.update({workflow_name(cls): cls for cls in replacing})
    return [by_name[name] for name in sorted(by_name)]


def workflows_in(module_name: str) -> list[type]:
    """The workflow classes a module defines (not those it imports)."""
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise InvalidQuery(
            f"--runbook-module: cannot import {module_name!r}: {type(e).__name__}: {e}"
        ) from None
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and hasattr(value, "__temporal_workflow_definition")
        and value.__module__ == module.__name__
    ]
    if not found:
        raise InvalidQuery(f"--runbook-module: {module_name!r} defines no workflow class")
    return found


def window_queries(workflow_type: str, closed_since: datetime) -> tuple[str, str]:
    """The running executions of a type, and those closed since `closed_since`."""
    stamp = closed_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kind = workflow_type.replace("\\", "\\\\").replace("'", "\\'")
    of_type = f"WorkflowType = '{kind}'"
    return (
        f"{of_type} AND ExecutionStatus = 'Running'",
        f"{of_type} AND ExecutionStatus != 'Running' AND CloseTime >= '{stamp}'",
    )


async def check_compatibility(
    client: Client,
    workflows: Sequence[type],
    *,
    closed_since: timedelta = timedelta(days=7),
    per_type: int = PER_TYPE_DEFAULT,
) -> CompatibilityReport:
    """Replays up to `per_type` executions of each type (running ones
    first, then the most recently closed) against `workflows`, with the
    client's data converter (its payload codec too) and the worker plugins
    the client carries (tracing), as the worker runs them."""
    since = datetime.now(UTC) - closed_since
    plugins = [
        p for p in client.config().get("plugins", []) if isinstance(p, temporal_worker.Plugin)
    ]
    replayer = Replayer(
        workflows=list(workflows),
        data_converter=client.data_converter,
        plugins=plugins,
        runtime=_quiet_runtime(),
    )
    codec = client.data_converter.payload_codec
    types: list[TypeChecked] = []
    broken: list[Breakage] = []
    unreadable: list[Unreadable] = []
    for cls in workflows:
        name = workflow_name(cls)
        executions, matching = await _executions(client, name, since, per_type)
        running = {e.run_id: e.close_time is None for e in executions}
        unread: list[tuple[WorkflowHistory, str]] = []
        readable = _readable(_histories(client, executions), codec, unread)
        async with replayer.workflow_replay_iterator(readable) as results:
            async for result in results:
                if result.replay_failure is None:
                    continue
                history = result.history
                # A payload that does not open (altered, or another key under
                # the same id) fails the replay too: that is no break either.
                reason = await unreadable_because(history, codec, every_payload=True)
                if reason is not None:
                    unread.append((history, reason))
                    continue
                broken.append(
                    Breakage(
                        workflow_id=history.workflow_id,
                        run_id=history.run_id,
                        workflow_type=name,
                        running=running.get(history.run_id, False),
                        message=str(result.replay_failure),
                    )
                )
        unreadable += [
            Unreadable(
                workflow_id=history.workflow_id,
                run_id=history.run_id,
                workflow_type=name,
                running=running.get(history.run_id, False),
                reason=reason,
            )
            for history, reason in unread
        ]
        types.append(TypeChecked(workflow_type=name, checked=len(executions), matching=matching))
    return CompatibilityReport(
        closed_since=since, types=types, broken=broken, unreadable=unreadable
    )


_RUNTIME: list[Runtime] = []


def _quiet_runtime() -> Runtime:
    """The SDK core warns on stdout of every replay that fails: here that is
    the finding, reported once in the check's own words (and `--json` stays
    JSON)."""
    if not _RUNTIME:
        errors_only = TelemetryFilter(core_level="ERROR", other_level="ERROR")
        _RUNTIME.append(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(errors_only))))
    return _RUNTIME[0]


async def _executions(
    client: Client, name: str, since: datetime, per_type: int
) -> tuple[list[WorkflowExecution], int]:
    """Up to `per_type` executions, running ones first (they are the ones a
    deploy can strand), and how many the window holds."""
    found: list[WorkflowExecution] = []
    matching = 0
    try:
        for query in window_queries(name, since):
            matching += (await client.count_workflows(query)).count
            left = per_type - len(found)
            if left > 0:
                found += [e async for e in client.list_workflows(query, limit=left)]
    except RPCError as e:
        raise Unavailable(f"Temporal did not list {name} executions: {e.message}") from None
    return found, matching


async def _readable(
    histories: AsyncIterator[WorkflowHistory],
    codec: PayloadCodec | None,
    unread: list[tuple[WorkflowHistory, str]],
) -> AsyncIterator[WorkflowHistory]:
    """The histories this process can open; the others go to `unread`, with
    why, without a replay (it would fail, and log a traceback saying less)."""
    async for history in histories:
        reason = await unreadable_because(history, codec)
        if reason is None:
            yield history
        else:
            unread.append((history, reason))


async def _histories(
    client: Client, executions: list[WorkflowExecution]
) -> AsyncIterator[WorkflowHistory]:
    """Each execution's history, a few fetched at a time, in order."""
    for start in range(0, len(executions), HISTORIES_AT_ONCE):
        batch = executions[start : start + HISTORIES_AT_ONCE]
        fetched: list[Any] = await asyncio.gather(
            *(client.get_workflow_handle(e.id, run_id=e.run_id).fetch_history() for e in batch),
            return_exceptions=True,
        )
        for execution, history in zip(batch, fetched, strict=True):
            if isinstance(history, RPCError):
                raise Unavailable(
                    f"Temporal did not give the history of {execution.id}: {history.message}"
                )
            if isinstance(history, BaseException):
                raise history
            yield history
