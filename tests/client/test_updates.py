"""People's updates through the client room, against the time-skipping server
and a real worker (the dev server where no worker answers): each way an update can fail comes back as one of the room's
errors (Refused in the workflow's own words, NotFound, Unavailable), and a
refused or unanswered request changes nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.client.errors import NotFound, Refused, Unavailable
from stanch.client.ids import workflow_id_for
from stanch.client.incidents import fetch_incident
from stanch.client.updates import INCIDENT_UPDATES, update_incident, update_name
from stanch.models.config import ApiRole
from stanch.models.decision import PersonRequest
from stanch.models.incident import (
    Acknowledge,
    AddNote,
    AssignRole,
    ChangeStatus,
    IncidentStatus,
    RequestRelease,
    Resolve,
)
from stanch.models.runbook import ApprovalDecision
from stanch.models.settings import Settings
from stanch.testing.decisions import SIGNER
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import exists, open_incident
from tests.support.plans import policy_file

Request = TypeVar("Request", bound=PersonRequest)
SILENCE = timedelta(seconds=1)  # how long an incident with no worker is given


def test_each_request_names_the_update_running_incidents_know():
    # Decisions are signed for these names, and running workflows answer them.
    assert {kind: update_name(u) for kind, u in INCIDENT_UPDATES.items()} == {
        Acknowledge: "acknowledge",
        Resolve: "resolve",
        AddNote: "add_note",
        AssignRole: "assign_role",
        RequestRelease: "request_release",
        ChangeStatus: "change_status",
    }


class SignedAt:
    """Signs as the gateway would, at the test server's (skipped) clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self, workflow_id: str, update: str, request: Request) -> Request:
        return SIGNER.sign(workflow_id, update, request, ApiRole.RESPONDER, self.now)


def _worker(env: WorkflowEnvironment, task_queue: str, tmp_path: Any) -> Worker:
    config = policy_file(tmp_path)
    return Worker(
        env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=tmp_path)),
    )


async def _plan_loaded(handle: WorkflowHandle[Any, Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (await handle.query(IncidentWorkflow.state)).plan_loaded:
        assert time.monotonic() < deadline, "the response plan never loaded"
        await asyncio.sleep(0.05)


async def _update_events(handle: WorkflowHandle[Any, Any]) -> list[str]:
    kinds = [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]
    return [k for k in kinds if "UPDATE" in k]


async def test_a_refusal_is_refused_in_the_workflows_words_and_changes_nothing(
    ts_env, task_queue, tmp_path, new_id, started
):
    incident = new_id()
    async with _worker(ts_env, task_queue, tmp_path):
        handle = await open_incident(started, ts_env.client, task_queue, incident)
        await _plan_loaded(handle)
        sign = SignedAt(await ts_env.get_current_time())
        with pytest.raises(Refused) as refused:
            await update_incident(ts_env.client, incident, Acknowledge(by="mallory"), sign=sign)
        with pytest.raises(Refused) as unsigned:
            await update_incident(ts_env.client, incident, Acknowledge(by="alice"))
        after = await fetch_incident(ts_env.client, incident)
        updates = await _update_events(handle)

    assert str(refused.value) == "'mallory' is not on the roster"  # no "ValueError: "
    assert "ValueError" not in str(unsigned.value) and str(unsigned.value)
    assert after.view.state.status is IncidentStatus.TRIGGERED
    assert after.view.state.acknowledged_by is None
    assert updates == []  # refused in the validator: nothing entered the history


async def test_an_accepted_request_answers_with_the_incident(
    ts_env, task_queue, tmp_path, new_id, started
):
    incident = new_id()
    async with _worker(ts_env, task_queue, tmp_path):
        handle = await open_incident(started, ts_env.client, task_queue, incident)
        await _plan_loaded(handle)
        sign = SignedAt(await ts_env.get_current_time())
        acked = await update_incident(ts_env.client, incident, Acknowledge(by="bob"), sign=sign)
        again = await update_incident(ts_env.client, incident, Acknowledge(by="bob"), sign=sign)
        state = (await fetch_incident(ts_env.client, incident)).view.state

    assert (acked.incident_id, acked.status, acked.changed) == (
        incident,
        IncidentStatus.ACKNOWLEDGED,
        True,
    )
    assert again.changed is False  # a retried ack is already true
    assert state.acknowledged_by == "bob"


async def test_an_unknown_incident_is_not_found_and_nothing_is_started(ts_env, task_queue, new_id):
    incident = new_id()
    sign = SignedAt(await ts_env.get_current_time())
    with pytest.raises(NotFound) as unknown_update:
        await update_incident(ts_env.client, incident, Acknowledge(by="alice"), sign=sign)
    with pytest.raises(NotFound) as unknown_read:
        await fetch_incident(ts_env.client, incident)

    assert incident in str(unknown_update.value)
    assert str(unknown_read.value) == f"no incident {incident!r}"
    assert not await exists(ts_env.client, workflow_id_for(incident))


async def test_an_incident_no_worker_serves_is_unavailable_and_unchanged(
    dev_env, task_queue, new_id, started
):
    # On the dev server, not the shared time-skipping one: an update left
    # waiting for a workflow task that never comes keeps the time-skipping
    # server locked after the workflow is terminated, and every later test
    # that skips time there would wait in real time.
    incident = new_id()
    handle = await open_incident(
        started, dev_env.client, task_queue, incident
    )  # no worker on this queue
    sign = SignedAt(await dev_env.get_current_time())
    with pytest.raises(Unavailable) as read:
        await fetch_incident(dev_env.client, incident, wait=SILENCE)
    with pytest.raises(Unavailable) as acted:
        await update_incident(
            dev_env.client, incident, Acknowledge(by="alice"), sign=sign, wait=SILENCE
        )

    assert "did not answer" in str(read.value) and incident in str(read.value)
    assert handle.id in str(acted.value)
    assert await _update_events(handle) == []


async def test_a_request_no_incident_takes_is_a_programming_error(ts_env, new_id):
    with pytest.raises(TypeError, match="ApprovalDecision"):
        await update_incident(ts_env.client, new_id(), ApprovalDecision(step="s", by="alice"))
