"""Honest intake errors, over real HTTP into real Temporal: an alert with any
number of targets opens its incident; what Temporal refuses for good is a 4xx
naming the cause (Azure retries a 5xx for hours, for nothing); only an engine
that is away is a 503; JSON nested too deeply is a 400, never a 500. Every
refusal is counted in stanch_alerts_refused and starts nothing."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from stanch.client import search_attributes
from stanch.client.ids import workflow_id_for
from stanch.client.search_attributes import INCIDENT_RESOURCES
from stanch.harness.binaries import installed
from stanch.harness.ports import free_port
from stanch.harness.waiting import eventually
from stanch.models.alert import CommonAlert
from stanch.stores.audit import SqliteAuditLog
from stanch.workflows.incident import IncidentWorkflow
from tests.support.alerts import unique_alert
from tests.support.incidents import exists, settled
from tests.support.plans import API_TOKENS, policy_file
from tests.support.stack import Stack

SUB = "00000000-0000-0000-0000-0000000000aa"


def vm_ids(count: int) -> list[str]:
    """Realistic ids: about 150 characters each, as the review used."""
    return [
        f"/subscriptions/{SUB}/resourceGroups/rg-web-tier-production-westeurope/providers/"
        f"Microsoft.Compute/virtualMachines/vm-web-frontend-{i:04d}-{uuid.uuid4().hex[:6]}"
        for i in range(count)
    ]


async def refused_count(http: httpx.AsyncClient, url: str, status: int) -> float:
    metrics = (await http.get(f"{url}/metrics")).text
    found = re.search(rf'^stanch_alerts_refused_total{{status="{status}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def test_an_alert_with_500_targets_opens_its_incident(stack: Stack):
    targets = vm_ids(500)
    body = unique_alert(alertTargetIDs=targets)
    long_one = unique_alert(alertTargetIDs=[vm_ids(1)[0] + "/" + "x" * 3000])
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await stack.post_alert(http, body)
        assert opened.status_code == 202, opened.text
        long_opened = await stack.post_alert(http, long_one)
        assert long_opened.status_code == 202, long_opened.text

    for answer in (opened.json(), long_opened.json()):
        handle = stack.client.get_workflow_handle(answer["workflow_id"])
        await eventually(lambda: _plan_loaded(stack.client, handle.id))  # noqa: B023
        kinds = [e.event_type async for e in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds, "the incident is wedged"
        listed = (await handle.describe()).typed_search_attributes.get(INCIDENT_RESOURCES)
        assert listed, "the listing keeps the ids that fit"
        assert len(json.dumps(listed, separators=(",", ":")).encode()) <= 2048

    state = (
        await stack.client.get_workflow_handle(opened.json()["workflow_id"]).query(
            IncidentWorkflow.state
        )
    ).state
    assert len(state.resources) == 500, "the incident keeps every target"
    first = state.resources[0]

    async def found_by_resource() -> bool:
        query = f"IncidentResources = '{first}' AND WorkflowId = '{opened.json()['workflow_id']}'"
        return (await stack.client.count_workflows(query)).count == 1

    await eventually(found_by_resource)
    for answer in (opened.json(), long_opened.json()):
        await stack.client.get_workflow_handle(answer["workflow_id"]).terminate("test done")


@asynccontextmanager
async def gateway_on(address: str, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The real gateway on loopback, up once it answers /metrics (its Temporal
    may be unreachable on purpose)."""
    from stanch.gateway.server import serve_gateway
    from stanch.models.settings import Settings

    token = "intake-" + uuid.uuid4().hex + uuid.uuid4().hex
    port = free_port()
    settings = Settings(
        temporal_address=address,
        task_queue=f"tq-{uuid.uuid4()}",
        config=policy_file(tmp_path),
        alert_token=SecretStr(token),
        state_dir=tmp_path,
        gateway_url=f"http://127.0.0.1:{port}",
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_gateway(settings, "127.0.0.1", port, stop))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:

        async def up() -> bool:
            try:
                return (await http.get(f"{url}/metrics")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(up)
    try:
        yield url, token
    finally:
        stop.set()
        await serving


async def post(http: httpx.AsyncClient, url: str, token: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(f"{url}/alerts", content=content, params={"token": token})


async def started(client: Client, body: dict[str, Any]) -> bool:
    return await exists(client, workflow_id_for(CommonAlert.model_validate(body).fingerprint()))


async def test_lasting_refusals_are_4xx_naming_the_cause(tmp_path: Path):
    """A Temporal of its own: search attributes not registered at first (a
    refusal on every alert), and a 64 KiB limit on each payload."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed("temporal"),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.blobSize.error=65536",
            "--dynamic-config-value",
            "limit.blobSize.warn=32768",
        ],
    ) as env:
        async with (
            gateway_on(env.client.service_client.config.target_host, tmp_path) as (
                url,
                token,
            ),
            httpx.AsyncClient(timeout=30) as http,
        ):
            before = await refused_count(http, url, 422)
            body = unique_alert()
            unregistered = await post(http, url, token, body)
            assert unregistered.status_code == 422, unregistered.text
            said = unregistered.json()["message"]
            assert "Temporal refused the alert" in said and "search attribute" in said
            assert "Retry-After" not in unregistered.headers
            assert await refused_count(http, url, 422) == before + 1
            assert not await started(env.client, body)

            await env.client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=env.client.namespace,
                    search_attributes={
                        key.name: IndexedValueType.ValueType(key.indexed_value_type)
                        for key in search_attributes.ALL
                    },
                )
            )
            big = unique_alert(alertTargetIDs=vm_ids(600))  # ~100 KB of targets

            async def registered() -> bool:
                return (await post(http, url, token, unique_alert())).status_code == 202

            await eventually(registered)
            before = await refused_count(http, url, 413)
            too_large = await post(http, url, token, big)
            assert too_large.status_code == 413, too_large.text
            assert "too large" in too_large.json()["message"]
            assert await refused_count(http, url, 413) == before + 1
            assert not await started(env.client, big)


async def test_only_an_engine_that_is_away_is_a_503(tmp_path: Path):
    closed = f"127.0.0.1:{free_port()}"
    async with gateway_on(closed, tmp_path) as (url, token), httpx.AsyncClient(timeout=30) as http:
        away = await post(http, url, token, unique_alert())
    assert away.status_code == 503, away.text
    assert away.headers["Retry-After"] == "10"
    assert "retry later" in away.json()["message"]


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


async def test_deeply_nested_json_is_a_400_and_changes_nothing(stack: Stack):
    audit = SqliteAuditLog(stack.config.parent / "audit.db")

    def received() -> int:
        return sum(1 for r in audit.records() if r["record"]["action"] == "alert received")

    async with httpx.AsyncClient(timeout=30) as http:
        opened = (await stack.post_alert(http, unique_alert())).json()
        incident = stack.client.get_workflow_handle(opened["workflow_id"])
        await eventually(lambda: _plan_loaded(stack.client, opened["workflow_id"]))
        await settled(incident)  # still paging tier 1: count once nothing is in flight
        history = len([e async for e in incident.fetch_history_events()])
        alerts = received()
        refused = await refused_count(http, stack.url, 400)

        # The review's body: 50,000 levels under `data`, with a valid token.
        deep = b'{"schemaId":"azureMonitorCommonAlertSchema","data":' + nested(50_000) + b"}"
        answer = await stack.post_alert(http, deep)
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"] == "body nested too deeply"
        # Parsed by json, but deep enough to exhaust the stack later on.
        shallow_enough = unique_alert()
        shallow_enough["data"]["alertContext"] = json.loads(nested(200))
        answer = await stack.post_alert(http, shallow_enough)
        assert answer.status_code == 400 and "nested too deeply" in answer.json()["message"]
        assert await refused_count(http, stack.url, 400) == refused + 2

        # The on-call API, authenticated, under its 64 KiB body limit.
        note = b'{"text":' + nested(30_000) + b"}"
        answer = await http.post(
            f"{stack.url}/api/incidents/{opened['incident_id']}/notes",
            content=note,
            headers={
                "Authorization": f"Bearer {API_TOKENS['responder']}",
                "Content-Type": "application/json",
            },
        )
        assert answer.status_code == 400, answer.text
        assert "nested too deeply" in answer.json()["message"]

    assert received() == alerts, "a refused alert was recorded"
    assert len([e async for e in incident.fetch_history_events()]) == history
    await incident.terminate("test done")


async def _plan_loaded(client: Client, workflow_id: str) -> bool:
    return (await client.get_workflow_handle(workflow_id).query(IncidentWorkflow.state)).plan_loaded
