"""Emergency access (issue 16, item 1): a grant asked for on an incident is
approved, made as an Azure role assignment in azuresim, and revoked at its
expiry or when the incident closes, whichever comes first; a failed revocation retries and pages until it succeeds; the
policy and four eyes are enforced by the workflow itself.

Time-skipping server, the real worker's workflows and activities, the real
SDK against azuresim; the vendor reads logs with their own token, and
azuresim answers it only while their role assignment exists."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.azuresim.faults import Fault
from stanch.client.updates import update_incident
from stanch.models.access_grant import (
    AccessGrantInput,
    AccessRequest,
    GrantStatus,
    grant_workflow_id,
)
from stanch.models.config import ApiRole
from stanch.models.incident import Resolve
from stanch.models.runbook import RunbookOutcome, RunbookResult
from stanch.models.settings import Settings
from stanch.testing.decisions import approve
from stanch.testing.runbooks import audit_records
from stanch.testing.started import Started
from stanch.testing.worker import until_gate
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.access_grant import AccessGrantWorkflow
from tests.support.access import (
    OPS,
    VENDOR_PRINCIPAL,
    access_policy_file,
    ask_for_access,
    assignments,
    grant_of,
    grant_result,
    guest_logs,
    guest_reads_logs,
    signing_at,
    until_status,
)
from tests.support.incidents import open_incident, timeline, view


@pytest.fixture
def ts_env(own_ts_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """A server per test (conftest's own_ts_env): in random order 1 to 3 of 8
    tests here waited in real time in env.sleep on the module's shared one."""
    return own_ts_env


@asynccontextmanager
async def stanch_worker(
    env: WorkflowEnvironment, settings: Settings, azure: AzureClients
) -> AsyncIterator[Worker]:
    async with Worker(
        env.client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, azure),
    ) as worker:
        yield worker


@pytest.fixture
def settings(tmp_path: Path, task_queue: str) -> Settings:
    return Settings(config=access_policy_file(tmp_path), state_dir=tmp_path, task_queue=task_queue)


@pytest.fixture
async def worker(
    ts_env: WorkflowEnvironment, settings: Settings, azure: AzureClients
) -> AsyncIterator[Settings]:
    async with stanch_worker(ts_env, settings, azure):
        yield settings


@pytest.fixture
def journal_start(sim: AzureSim) -> Iterator[None]:
    sim.journal.clear()
    yield


async def granted(
    env: WorkflowEnvironment, started: Started, settings: Settings, incident: str, **ask: Any
) -> Any:
    """An incident, a grant on it asked for by alice, approved by carol: active."""
    await open_incident(started, env.client, settings.task_queue, incident)
    grant = await ask_for_access(env, settings.task_queue, incident, **ask)
    handle = started.add(
        env.client.get_workflow_handle(grant.workflow_id, result_type=RunbookResult)
    )
    await until_gate(handle, f"access-{grant.grant_id}")
    await approve(handle, f"access-{grant.grant_id}", "carol", env=env)
    await until_status(handle, GrantStatus.ACTIVE)
    return handle


def role_assignment_calls(sim: AzureSim) -> list[tuple[str, int | None]]:
    return [
        (c["method"], c["status"])
        for c in sim.journal.calls(0)
        if "/roleassignments/" in c["path"].lower()
    ]


async def test_a_grant_expires_on_time_and_the_guest_reads_logs_only_meanwhile(
    ts_env: WorkflowEnvironment, worker: Settings, sim: AzureSim, started: Started, new_id: Any
) -> None:
    incident = new_id()
    async with guest_logs(sim) as vendor:
        assert not await guest_reads_logs(vendor)  # no access before the grant
        handle = await granted(ts_env, started, worker, incident)
        active = await grant_of(handle)
        assert await guest_reads_logs(vendor)
        [made] = assignments(sim)
        assert made["properties"]["principalId"] == VENDOR_PRINCIPAL
        assert made["properties"]["scope"] == OPS
        assert made["properties"]["roleDefinitionId"].endswith(
            "73c42c96-874c-492b-b04d-ab87d138a893"  # Log Analytics Reader
        )
        assert active.approved_by == ["carol"]

        result = await grant_result(ts_env, handle)  # skips the two hours

        assert result.outcome is RunbookOutcome.RELEASED
        revoked = await grant_of(handle)
        assert revoked.status is GrantStatus.REVOKED
        assert revoked.revoked_because == "expired after 2h"
        assert active.granted_at is not None and revoked.revoked_at is not None
        held = revoked.revoked_at - active.granted_at
        assert timedelta(hours=2) <= held < timedelta(hours=2, minutes=1)
        assert assignments(sim) == []
        assert not await guest_reads_logs(vendor)

    shown = (await view(ts_env.client, f"incident-{incident}")).state.access
    assert [(g.grant_id, g.status) for g in shown] == [(revoked.grant_id, GrantStatus.REVOKED)]
    lines = [e.summary for e in await timeline(ts_env.client, f"incident-{incident}")]
    assert any("asks that contoso-support" in line for line in lines)
    assert any("holds Log Analytics Reader on" in line for line in lines)
    assert any("no longer holds Log Analytics Reader: expired after 2h" in line for line in lines)
    actions = [(r["action"], r["outcome"]) for r in audit_records(worker.state_dir)]
    assert (f"grant Log Analytics Reader to contoso-support on {OPS}", "succeeded") in actions
    assert (f"revoke Log Analytics Reader of contoso-support on {OPS}", "undone") in actions
    assert (f"approval: access-{revoked.grant_id}", "approved") in actions


async def test_closing_the_incident_revokes_its_grants_before_they_expire(
    ts_env: WorkflowEnvironment, worker: Settings, sim: AzureSim, started: Started, new_id: Any
) -> None:
    incident = new_id()
    handle = await granted(ts_env, started, worker, incident, duration=timedelta(hours=4))
    active = await grant_of(handle)
    sign = await signing_at(ts_env, ApiRole.RESPONDER)
    await update_incident(ts_env.client, incident, Resolve(by="alice", note="fixed"), sign=sign)

    await grant_result(ts_env, handle)  # the incident closes 30 minutes later

    revoked = await grant_of(handle)
    assert revoked.revoked_because == "the incident closed"
    assert active.granted_at is not None and revoked.revoked_at is not None
    assert revoked.revoked_at - active.granted_at < timedelta(hours=1)
    assert assignments(sim) == []


async def test_a_failing_revocation_retries_and_pages_until_it_succeeds(
    ts_env: WorkflowEnvironment,
    worker: Settings,
    sim: AzureSim,
    started: Started,
    new_id: Any,
    journal_start: None,
) -> None:
    handle = await granted(ts_env, started, worker, new_id(), duration=timedelta(hours=1))
    sim.faults.add(Fault(method="DELETE", path="roleAssignments", status=503, times=2))

    await grant_result(ts_env, handle)

    assert assignments(sim) == []
    deletes = [status for method, status in role_assignment_calls(sim) if method == "DELETE"]
    assert deletes == [503, 503, 200]
    pages = [
        json.loads(line)
        for line in (worker.state_dir / "pages.jsonl").read_text().split("\n")
        if line
    ]
    revocation_pages = [p for p in pages if "NOT revoked yet" in json.dumps(p)]
    assert revocation_pages, "the on-call must be paged while the access is still open"
    view_ = await grant_of(handle)
    assert view_.status is GrantStatus.REVOKED


async def test_four_eyes_the_requester_may_not_approve_access_that_can_change_things(
    ts_env: WorkflowEnvironment, worker: Settings, sim: AzureSim, started: Started, new_id: Any
) -> None:
    incident = new_id()
    await open_incident(started, ts_env.client, worker.task_queue, incident)
    grant = await ask_for_access(
        ts_env,
        worker.task_queue,
        incident,
        by="carol",
        role="Virtual Machine Contributor",
        duration=timedelta(hours=1),
    )
    handle = started.add(
        ts_env.client.get_workflow_handle(grant.workflow_id, result_type=RunbookResult)
    )
    gate = f"access-{grant.grant_id}"
    await until_gate(handle, gate)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await approve(handle, gate, "carol", env=ts_env)
    assert "four eyes" in str(refused.value.cause)
    assert assignments(sim) == []

    await approve(handle, gate, "dave", env=ts_env)
    active = await until_status(handle, GrantStatus.ACTIVE)
    assert active.approved_by == ["dave"]


@pytest.mark.parametrize(
    ("ask", "why"),
    [
        ({"role": "Owner"}, "role: 'Owner' may not be granted"),
        ({"duration": timedelta(hours=5)}, "for: 5h is longer than the 4h"),
        (
            {
                "scope": "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-finance"
            },
            "outside remediation.scopes",
        ),
    ],
)
async def test_the_workflow_refuses_what_the_policy_does_not_allow(
    ts_env: WorkflowEnvironment,
    worker: Settings,
    sim: AzureSim,
    started: Started,
    new_id: Any,
    journal_start: None,
    ask: dict[str, Any],
    why: str,
) -> None:
    """Started straight on Temporal, past the gateway's checks: still refused,
    and nothing reaches Azure but the reads."""
    incident = new_id()
    await open_incident(started, ts_env.client, worker.task_queue, incident)
    grant = await ask_for_access(ts_env, worker.task_queue, incident, **ask)
    handle = started.add(
        ts_env.client.get_workflow_handle(grant.workflow_id, result_type=RunbookResult)
    )
    if "scope" in ask:  # the policy allows it: the scope is checked when it is granted
        await until_gate(handle, f"access-{grant.grant_id}")
        await approve(handle, f"access-{grant.grant_id}", "carol", env=ts_env)
    result = await grant_result(ts_env, handle)
    assert result.outcome is RunbookOutcome.REFUSED
    assert why in result.summary
    assert (await grant_of(handle)).status is GrantStatus.REFUSED
    assert [c for c in sim.journal.calls(0) if c["mutation"]] == []


async def test_an_unsigned_request_sent_straight_to_temporal_is_refused(
    ts_env: WorkflowEnvironment, worker: Settings, sim: AzureSim, started: Started, new_id: Any
) -> None:
    incident = new_id()
    await open_incident(started, ts_env.client, worker.task_queue, incident)
    workflow_id = grant_workflow_id(f"incident-{incident}", "forged")
    request = AccessRequest(
        by="alice",
        guest="contoso-support",
        role="Log Analytics Reader",
        scope=OPS,
        duration=timedelta(hours=1),
    )
    handle = started.add(
        await ts_env.client.start_workflow(
            AccessGrantWorkflow.run,
            AccessGrantInput(
                incident_id=incident,
                incident_workflow_id=f"incident-{incident}",
                resource_id=OPS,
                grant_id="forged",
                request=request,
            ),
            id=workflow_id,
            task_queue=worker.task_queue,
        )
    )
    result = await handle.result()  # started here: its handle skips time itself
    assert result.outcome is RunbookOutcome.REFUSED
    assert "unsigned decision" in result.summary
    assert assignments(sim) == []
