"""Reading incidents: Temporal is their system of record. A listing comes from
visibility (the search attributes), one incident's detail from its queries,
a finished incident's final state from its result."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution as ExecutionRef
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from stanch.client.codec import PayloadDecryptionError
from stanch.client.errors import UNANSWERED, InvalidQuery, NotFound, Unavailable
from stanch.client.ids import incident_id_of, workflow_id_for
from stanch.client.search_attributes import INCIDENT_SERVICE, INCIDENT_SEVERITY, INCIDENT_STATUS
from stanch.client.stuck import (
    cannot_replay,
    failed_task_refusal,
    replay_probe,
    stuck_in,
    stuck_workflow,
)
from stanch.models.config import NAME_PATTERN
from stanch.models.incident import (
    IncidentInput,
    IncidentState,
    IncidentStatus,
    IncidentView,
    TimelineEntry,
)
from stanch.models.severity import Severity
from stanch.models.stuck import StuckWorkflow
from stanch.workflows.incident import IncidentWorkflow
from stanch.workflows.lifecycle import opened

# How long a query may wait for a worker: one incident's page, and each row of
# a listing many callers share.
DETAIL_WAIT = timedelta(seconds=10)
LISTING_WAIT = timedelta(seconds=2)
QUERIES_AT_ONCE = 8  # queries one listing has in flight
PAGE_SIZE_MAX = 200
_SERVICE = re.compile(NAME_PATTERN)
log = logging.getLogger(__name__)


class IncidentSummary(BaseModel):
    """A row of a listing: what visibility knows without asking the workflow."""

    incident_id: str
    workflow_id: str
    status: str | None
    severity: str | None
    service: str | None
    title: str | None
    opened_at: datetime | None
    running: bool
    stuck: StuckWorkflow | None = None  # the incident or its runbook cannot go on


class IncidentPage(BaseModel):
    incidents: list[IncidentSummary]
    next_page_token: str | None  # opaque; give it back for the next page


class IncidentDetail(BaseModel):
    """What the incident answers: its `state` and `timeline` queries. When
    it or its runbook is stuck, `stuck` says which and why; a stuck incident
    cannot answer, and `view` is then what it held when its run began."""

    view: IncidentView
    timeline: list[TimelineEntry]
    stuck: StuckWorkflow | None = None

    @property
    def state(self) -> IncidentState:
        return self.view.state


def listing_query(
    *,
    status: IncidentStatus | None = None,
    severity: Severity | None = None,
    service: str | None = None,
    running_only: bool = False,
    started_since: datetime | None = None,
    finished_too: bool = False,
) -> str:
    """The one visibility query for incidents. Values are checked (a service is
    a policy name) and quoted by one rule."""
    clauses = ["WorkflowType = 'IncidentWorkflow'"]
    if running_only:
        clauses.append("ExecutionStatus = 'Running'")
    elif finished_too:
        clauses.append("ExecutionStatus IN ('Running', 'Completed')")
    if started_since is not None:
        stamp = started_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        clauses.append(f"StartTime >= {_quoted(stamp)}")
    if status is not None:
        clauses.append(f"{INCIDENT_STATUS.name} = {_quoted(str(status))}")
    if severity is not None:
        clauses.append(f"{INCIDENT_SEVERITY.name} = {_quoted(str(severity))}")
    if service is not None:
        if not _SERVICE.match(service):
            raise InvalidQuery(f"service: not a service name: {service!r}")
        clauses.append(f"{INCIDENT_SERVICE.name} = {_quoted(service)}")
    return " AND ".join(clauses)


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


async def list_incidents(
    client: Client, query: str, *, page_size: int = 50, page_token: str | None = None
) -> IncidentPage:
    """One page of incidents matching `query` (see listing_query)."""
    try:
        token = bytes.fromhex(page_token) if page_token else None
    except ValueError:
        raise InvalidQuery("page_token: not a token from a previous page") from None
    listing = client.list_workflows(
        query, page_size=max(1, min(page_size, PAGE_SIZE_MAX)), next_page_token=token
    )
    try:
        await listing.fetch_next_page()
    except RPCError as e:
        if e.status is RPCStatusCode.INVALID_ARGUMENT and token is not None:
            raise InvalidQuery("page_token: not a token from a previous page") from None
        if e.status in UNANSWERED:
            raise Unavailable(f"Temporal did not answer the listing: {e.message}") from None
        raise
    rows = [await _summary(execution) for execution in listing.current_page or []]
    await _mark_stuck(client, rows)
    following = listing.next_page_token
    return IncidentPage(incidents=rows, next_page_token=following.hex() if following else None)


async def _mark_stuck(client: Client, rows: list[IncidentSummary]) -> None:
    """A describe of each open incident, and of its running runbooks when it
    has any: visibility does not know a workflow task keeps failing."""
    asking = asyncio.Semaphore(QUERIES_AT_ONCE)

    async def mark(row: IncidentSummary) -> None:
        async with asking:
            row.stuck = await stuck_workflow(client, row.workflow_id) or await stuck_in(
                client, await _running_children(client, row.workflow_id)
            )

    await asyncio.gather(*(mark(row) for row in rows if row.running))


async def _running_children(client: Client, workflow_id: str) -> list[str]:
    try:
        described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=LISTING_WAIT)
    except RPCError:
        return []
    return [child.workflow_id for child in described.raw_description.pending_children]


async def _summary(execution: WorkflowExecution) -> IncidentSummary:
    attrs = execution.typed_search_attributes
    try:
        memo = await execution.memo()
    except (PayloadDecryptionError, KeyError):
        # Sealed with a payload key this process does not hold (KeyError: it
        # holds none): list the incident by its plain search attributes
        # rather than fail the whole listing.
        memo = {"title": "(encrypted: this process has no key for it)"}
    return IncidentSummary(
        incident_id=incident_id_of(execution.id) or execution.id,
        workflow_id=execution.id,
        status=attrs.get(INCIDENT_STATUS),
        severity=attrs.get(INCIDENT_SEVERITY),
        service=attrs.get(INCIDENT_SERVICE),
        title=memo.get("title"),
        opened_at=execution.start_time,
        running=execution.close_time is None,
    )


def incident_handle(
    client: Client, incident_id: str, run_id: str | None = None
) -> WorkflowHandle[IncidentWorkflow, IncidentState]:
    return client.get_workflow_handle_for(
        IncidentWorkflow.run, workflow_id_for(incident_id), run_id=run_id
    )


async def fetch_incident(
    client: Client, incident_id: str, wait: timedelta = DETAIL_WAIT, *, probe: bool = True
) -> IncidentDetail:
    """An incident's state and timeline, as its workflow answers. A query waits
    for a worker: bounded by `wait`, so an incident whose workers are all gone
    is Unavailable, never a call that hangs. A stuck incident answers with what
    describe and its start say, and `stuck`; a running runbook of it is
    described, and with `probe` replayed by a query (one that waits at its
    gate fails only when woken, and would show "waiting" until then)."""
    handle = incident_handle(client, incident_id)
    try:
        view = await handle.query(IncidentWorkflow.state, rpc_timeout=wait)
        timeline = await handle.query(IncidentWorkflow.timeline, rpc_timeout=wait)
    except WorkflowQueryFailedError as e:
        if not cannot_replay(e.message):
            raise Unavailable(f"incident {incident_id!r} cannot answer: {e.message}") from None
        replayed = StuckWorkflow(
            workflow_id=handle.id,
            workflow_type="IncidentWorkflow",
            reason=e.message,
            cause="NON_DETERMINISTIC_ERROR",
        )
        found = await stuck_workflow(client, handle.id)
        return await _last_known(client, handle.id, found or replayed)
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no incident {incident_id!r}") from None
        stuck = await stuck_workflow(client, handle.id) if failed_task_refusal(e) else None
        if stuck is not None:
            return await _last_known(client, handle.id, stuck)
        if e.status is RPCStatusCode.FAILED_PRECONDITION:
            # Its workflow task failed or timed out and is being retried (a
            # busy worker, a deploy): a moment later it answers.
            raise Unavailable(
                f"incident {incident_id!r} cannot answer right now ({e.message}): retry"
            ) from None
        if e.status in UNANSWERED:
            raise Unavailable(
                f"incident {incident_id!r} did not answer within {wait.seconds}s: "
                "are its workers running?"
            ) from None
        raise
    return IncidentDetail(
        view=view, timeline=timeline, stuck=await _stuck_runbook(client, view.state, probe)
    )


async def _stuck_runbook(client: Client, state: IncidentState, probe: bool) -> StuckWorkflow | None:
    running = [v for v in (state.runbook, state.release) if v is not None and v.outcome is None]
    stuck = await stuck_in(client, (v.workflow_id for v in running))
    if stuck is not None or not probe:
        return stuck
    for view in running:
        stuck = await replay_probe(client, view.workflow_id, view.runbook)
        if stuck is not None:
            return stuck
    return None


async def _last_known(client: Client, workflow_id: str, stuck: StuckWorkflow) -> IncidentDetail:
    """A stuck incident's picture without its queries: the state it carried
    into its run (or opened with), its status as last listed. Enough to say
    what is stuck; the rest returns once the code is fixed."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=DETAIL_WAIT)
        first = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=ExecutionRef(workflow_id=workflow_id, run_id=described.run_id),
                maximum_page_size=1,
            ),
            timeout=DETAIL_WAIT,
        )
        payloads = first.history.events[0].workflow_execution_started_event_attributes.input
        [started] = await client.data_converter.decode(payloads.payloads, [IncidentInput])
    except (RPCError, IndexError, ValueError) as e:
        raise Unavailable(f"{stuck.summary}; its last state is unreadable: {e}") from None
    assert isinstance(started, IncidentInput)
    if started.carried is not None:
        state, timeline = started.carried.state, started.carried.timeline
    else:
        opened_at = described.start_time or datetime.now(UTC)
        state = opened(started.incident_id, workflow_id, started.first_alert, opened_at)
        timeline = []
    listed = described.typed_search_attributes.get(INCIDENT_STATUS)
    if listed in set(IncidentStatus):
        state.status = IncidentStatus(listed)
    return IncidentDetail(
        view=IncidentView(state=state, plan_loaded=False), timeline=timeline, stuck=stuck
    )


async def open_incidents(
    client: Client, limit: int = 50, wait: timedelta = LISTING_WAIT
) -> list[IncidentDetail]:
    """Every open incident's detail (up to `limit`). An incident that does not
    answer within `wait` is left out rather than holding up the rest."""
    ids = [
        incident_id_of(e.id) or e.id
        async for e in client.list_workflows(listing_query(running_only=True), limit=limit)
    ]
    answers = await asyncio.gather(
        *(fetch_incident(client, i, wait, probe=False) for i in ids), return_exceptions=True
    )
    silent = [i for i, a in zip(ids, answers, strict=True) if not isinstance(a, IncidentDetail)]
    if silent:
        log.warning("open incidents not answering their queries: %s", ", ".join(silent))
    return [a for a in answers if isinstance(a, IncidentDetail)]


async def states_since(
    client: Client,
    since: datetime,
    *,
    service: str | None = None,
    limit: int = 1000,
    finished: OrderedDict[str, IncidentState] | None = None,
) -> list[IncidentState]:
    """Every incident that started since `since`, open or finished: the
    current state of a running one (query), the final state of a closed one
    (its result). A result never changes: give `finished` to keep them across
    calls (bounded to 20 times `limit`, the oldest go first)."""
    finished = OrderedDict() if finished is None else finished
    query = listing_query(started_since=since, finished_too=True, service=service)
    executions = [e async for e in client.list_workflows(query, limit=limit)]
    asking = asyncio.Semaphore(QUERIES_AT_ONCE)

    async def state_of(execution: WorkflowExecution) -> IncidentState | None:
        async with asking:
            try:
                handle = client.get_workflow_handle_for(
                    IncidentWorkflow.run, execution.id, run_id=execution.run_id
                )
                if execution.status is WorkflowExecutionStatus.RUNNING:
                    view = await handle.query(IncidentWorkflow.state, rpc_timeout=LISTING_WAIT)
                    return view.state
                if execution.run_id not in finished:
                    finished[execution.run_id] = await handle.result()
                    # bounded: re-reading results is cheap, memory is not
                    while len(finished) > 20 * limit:
                        finished.popitem(last=False)
                finished.move_to_end(execution.run_id)
                return finished[execution.run_id]
            except (RPCError, WorkflowFailureError, WorkflowQueryFailedError, KeyError):
                # gone since listing, its worker is away, or it is stuck: count what answers
                return None

    answers = await asyncio.gather(*map(state_of, executions))
    return [state for state in answers if state is not None]
