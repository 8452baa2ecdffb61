"""Telling a stuck workflow from a waiting one. A workflow whose code no
longer replays its history (a change deployed without `workflow.patched`)
fails its workflow task on every attempt: queries to it fail, updates wait
and then fail, and its last answer says "waiting" forever. What describe
and the history say about it is read here, so that every caller shows it
as stuck with the worker's own reason, and refuses decisions at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution as ExecutionRef
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from stanch.models.stuck import RUNBOOK_CHECK_HINT, StuckWorkflow

# A first failure is retried at once; from the second attempt on, the same
# code fails the same way.
STUCK_FROM_ATTEMPT = 2
PROBE_WAIT = timedelta(seconds=3)  # a replay of one workflow's history on a worker
DESCRIBE_WAIT = timedelta(seconds=5)
EVENTS_READ_AT_MOST = 500  # newest first: the failure is near the end of a stuck history
# Causes that a retry clears (a signal raced the completion, a sticky worker
# went away): a workflow failing for these is busy, not stuck.
PASSING_CAUSES = frozenset(
    {
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE,
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND,
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND,
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_UPDATE,
    }
)
# The worker's words for a history its code cannot replay.
NONDETERMINISM_MARKS = ("[TMPRL1100]", "Nondeterminism error")
# Temporal's refusal of a query or update to a workflow whose task keeps failing.
FAILED_TASK_WORDS = "Workflow Task in failed state"


def cannot_replay(message: str) -> bool:
    return any(mark in message for mark in NONDETERMINISM_MARKS)


def failed_task_refusal(error: RPCError) -> bool:
    """Temporal's answer to a query or update sent to a workflow whose
    workflow task keeps failing."""
    return error.status is RPCStatusCode.FAILED_PRECONDITION and FAILED_TASK_WORDS in error.message


def stuck_words(workflow_id: str) -> str:
    """What to say when Temporal refused for a failing workflow task but
    describe could not say why (it closed since, or did not answer)."""
    return f"stuck: {workflow_id} — its workflow task keeps failing ({RUNBOOK_CHECK_HINT})"


async def stuck_workflow(
    client: Client, workflow_id: str, run_id: str | None = None
) -> StuckWorkflow | None:
    """The workflow, if it is running and its workflow task has failed more
    than once for a reason a retry does not clear. Cheap: one describe, and
    the end of its history only when it is failing."""
    try:
        described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe(
            rpc_timeout=DESCRIBE_WAIT
        )
    except RPCError:
        return None  # gone, or Temporal did not answer: nothing to say about it
    return await _stuck(client, described)


async def stuck_in(client: Client, workflow_ids: Iterable[str]) -> StuckWorkflow | None:
    """The first of these workflows found stuck (an incident and its runbooks)."""
    found = await asyncio.gather(*(stuck_workflow(client, w) for w in workflow_ids))
    return next((s for s in found if s is not None), None)


async def _stuck(client: Client, described: WorkflowExecutionDescription) -> StuckWorkflow | None:
    raw = described.raw_description
    if described.status is not WorkflowExecutionStatus.RUNNING:
        return None
    if not raw.HasField("pending_workflow_task"):
        return None
    attempts = raw.pending_workflow_task.attempt
    if attempts < STUCK_FROM_ATTEMPT:
        return None
    failure = await last_task_failure(client, described.id, described.run_id)
    if failure is None:
        return None
    cause, reason = failure
    if cause in PASSING_CAUSES:
        return None
    return StuckWorkflow(
        workflow_id=described.id,
        workflow_type=described.workflow_type,
        reason=reason,
        cause=WorkflowTaskFailedCause.Name(cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_"),
        attempts=attempts,
    )


async def last_task_failure(
    client: Client, workflow_id: str, run_id: str | None
) -> tuple[WorkflowTaskFailedCause.ValueType, str] | None:
    """The cause and message of the workflow's last failed workflow task,
    unless a later one completed or merely timed out (a slow worker). Reads
    the history newest first: the failure of a stuck workflow is at its end
    (Temporal records the first failure of a run of them, not each retry)."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=ExecutionRef(workflow_id=workflow_id, run_id=run_id or ""),
        maximum_page_size=100,
    )
    read = 0
    while read < EVENTS_READ_AT_MOST:
        try:
            page = await client.workflow_service.get_workflow_execution_history_reverse(
                request, timeout=DESCRIBE_WAIT
            )
        except RPCError:
            return None
        for event in page.history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed = event.workflow_task_failed_event_attributes
                return failed.cause, failed.failure.message or "its workflow task failed"
            if event.event_type in (
                EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
            ):
                return None
        read += len(page.history.events)
        if not page.next_page_token:
            return None
        request.next_page_token = page.next_page_token
    return None


async def replay_probe(
    client: Client, workflow_id: str, workflow_type: str, wait: timedelta = PROBE_WAIT
) -> StuckWorkflow | None:
    """Asks a worker to replay the workflow (a query, which enters no
    history): a workflow that waits without a task (at an approval gate) fails
    only when something wakes it, and a decision sent to it then would wait
    and leave a failed task behind. A query that fails for want of a worker
    says nothing here: the caller's own request will tell."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.query("__temporal_workflow_metadata", rpc_timeout=wait)
    except WorkflowQueryFailedError as e:
        if cannot_replay(e.message):
            return StuckWorkflow(
                workflow_id=workflow_id,
                workflow_type=workflow_type,
                reason=e.message,
                cause="NON_DETERMINISTIC_ERROR",
            )
        return None
    except RPCError as e:
        if failed_task_refusal(e):
            return await stuck_workflow(client, workflow_id)
        return None
    return None


async def stuck_now(client: Client, workflow_id: str, workflow_type: str) -> StuckWorkflow | None:
    """Stuck by describe, else by a replay: what a decision checks before it
    is sent, so that it is refused at once and leaves nothing in history.
    Both asked at once: a decision waits for the slower of the two, not their
    sum, and no longer than the describe when that already says stuck (a
    query to a workflow between failed attempts waits for the next one)."""
    replayed = asyncio.ensure_future(replay_probe(client, workflow_id, workflow_type))
    try:
        return await stuck_workflow(client, workflow_id) or await replayed
    finally:
        replayed.cancel()
