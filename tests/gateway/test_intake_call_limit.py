"""A gateway bounded to one Temporal call in flight (STANCH_INTAKE_CALLS_IN_FLIGHT)
still answers every alert of a burst over several incidents with a 202 only once
it is recorded, loses none, and the batches that wait for their turn are
counted (stanch_intake_calls_waited): over real HTTP, against the real worker
and Temporal dev server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from bench.incidents import signals_received
from stanch.harness.ports import free_port
from stanch.stores.audit import SqliteAuditLog
from stanch.testing.started import Started
from tests.support.alerts import unique_alert
from tests.support.incidents import view
from tests.support.stack import Stack, gateway_at, stack_settings

INCIDENTS = 6
ALERTS_EACH = 25


def waited() -> float:
    """The intake's count of batches that waited for a free call (the
    gateway runs in this process, so its metrics are this registry's)."""
    return REGISTRY.get_sample_value("stanch_intake_calls_waited_total") or 0.0


async def test_one_call_in_flight_loses_nothing_and_batches_harder(
    stack: Stack, dev_env: WorkflowEnvironment, tmp_path: Path, started: Started
):
    port = free_port()
    settings = stack_settings(
        dev_env,
        tmp_path / "bounded",
        stack.task_queue,
        stack.config,
        stack.token,
        port,
        intake_calls_in_flight=1,
    )
    tag = uuid.uuid4().hex[:6]
    bodies = [
        unique_alert(rule=f"bounded-{tag}-{i % INCIDENTS}") for i in range(INCIDENTS * ALERTS_EACH)
    ]
    waited_before = waited()
    async with gateway_at(settings, port) as url:
        async with httpx.AsyncClient(
            limits=httpx.Limits(max_connections=len(bodies)),
            timeout=60,
            params={"token": stack.token},
        ) as http:
            responses = await asyncio.gather(*(http.post(f"{url}/alerts", json=b) for b in bodies))
    assert [r.status_code for r in responses] == [202] * len(bodies), responses[0].text
    workflow_ids = {r.json()["workflow_id"] for r in responses}
    assert len(workflow_ids) == INCIDENTS
    signals = 0
    for workflow_id in workflow_ids:
        started.add(stack.client.get_workflow_handle(workflow_id))
        assert (await view(stack.client, workflow_id)).state.alert_count == ALERTS_EACH
        signals += await signals_received(stack.client, workflow_id)
    # One call at a time for six incidents: while one incident's batch is out,
    # the others' batches wait for their turn, gathering alerts.
    assert signals < len(bodies), "coalesced"
    assert waited() > waited_before, "no batch waited for its turn: the bound is not in force"
    audit = SqliteAuditLog(settings.state_dir / "audit.db")
    received = [r for r in audit.records() if r["record"]["action"] == "alert received"]
    assert len(received) == len(bodies)
    assert audit.verify() == []
