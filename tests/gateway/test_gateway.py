"""Alert intake over real HTTP, into real incidents on the Temporal dev server."""

from __future__ import annotations

import asyncio
import copy
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError

from stanch.client import search_attributes
from stanch.client.ids import workflow_id_for
from stanch.harness.waiting import eventually
from stanch.models.alert import CommonAlert
from stanch.models.incident import (
    IncidentStatus,
    Resolve,
    UpdateResult,
)
from stanch.testing.decisions import decide
from tests.support.alerts import sample, unique_alert
from tests.support.incidents import exists, timeline, view
from tests.support.stack import CONTINUE_AS_NEW_AFTER, Stack

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "examples" / "alerts").glob("*.json"))
SHARED = sorted((ROOT.parent / "shared" / "azure-alert-samples").glob("*.json"))


def test_search_attribute_keys_match_what_dev_registers():
    # Derived from the keys; these are the type names `temporal` accepts.
    assert {k.name: k.indexed_value_type.name for k in search_attributes.ALL} == {
        "IncidentStatus": "KEYWORD",
        "IncidentSeverity": "KEYWORD",
        "IncidentService": "KEYWORD",
        "IncidentResources": "KEYWORD_LIST",
    }
    assert search_attributes.SEARCH_ATTRIBUTES == {
        "IncidentStatus": "Keyword",
        "IncidentSeverity": "Keyword",
        "IncidentService": "Keyword",
        "IncidentResources": "KeywordList",
    }


@pytest.mark.parametrize("path", SAMPLES + SHARED, ids=lambda p: f"{p.parent.name}/{p.name}")
async def test_every_sample_is_accepted_over_http(stack: Stack, path: Path):
    async with httpx.AsyncClient() as http:
        response = await stack.post_alert(http, path.read_bytes())
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["workflow_id"] == f"incident-{answer['incident_id']}"
    assert answer["incident_id"] == CommonAlert.model_validate_json(path.read_text()).fingerprint()
    state = (await view(stack.client, answer["workflow_id"])).state
    assert state.alert_count >= 1
    await stack.client.get_workflow_handle(answer["workflow_id"]).terminate("test done")


@pytest.fixture
def one_signal_per_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    # The storm test below is about incidents outgrowing their history. The
    # gateway coalesces a burst into a few signals (tests/gateway/test_coalescing.py
    # covers that path, continue-as-new included), so here each alert goes
    # alone, as before coalescing, and 200 alerts surely pass the limit.
    monkeypatch.setenv("STANCH_COALESCE_WINDOW_MS", "-1")


async def test_storm_of_200_alerts_over_5_fingerprints_makes_5_incidents(
    one_signal_per_alert: None, stack: Stack
):
    rules = [f"storm-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
    bodies = [unique_alert(rule=rules[i % 5]) for i in range(200)]
    # 200 requests queue behind 50 connections: on a loaded 2-core machine the
    # last ones wait longer than httpx's default 5 s.
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50), timeout=60) as http:
        responses = await asyncio.gather(*(stack.post_alert(http, b) for b in bodies))
    assert [r.status_code for r in responses] == [202] * 200
    answers = [r.json() for r in responses]
    workflow_ids = {a["workflow_id"] for a in answers}
    assert len(workflow_ids) == 5
    assert sum(not a["deduplicated"] for a in answers) == 5, (
        "exactly one request per incident opened it"
    )

    counts = {wid: (await view(stack.client, wid)).state.alert_count for wid in workflow_ids}
    assert sum(counts.values()) == 200, counts
    assert set(counts.values()) == {40}

    # Every incident outgrew the history limit and continued as new, keeping its state.
    for wid in workflow_ids:
        state = (await view(stack.client, wid)).state
        entries = await timeline(stack.client, wid)
        assert state.runs > 1, f"{wid} never continued as new (limit {CONTINUE_AS_NEW_AFTER})"
        assert [e.kind for e in entries][:2] == ["opened", "alert_fired"]
        repeated = [e for e in entries if e.kind == "alert_repeated"]
        assert sum(e.count for e in repeated) == 39
        assert sum(1 for e in entries if e.kind == "paged") == 1, "repeats must not re-page"

    # Listing by search attribute finds exactly these five.
    rule_filter = " OR ".join(f"WorkflowId = '{wid}'" for wid in workflow_ids)
    query = (
        "ExecutionStatus = 'Running' AND IncidentStatus = 'triggered' "
        f"AND IncidentSeverity = 'Sev4' AND ({rule_filter})"
    )

    async def listed() -> bool:
        return (await stack.client.count_workflows(query)).count == 5

    await eventually(listed)
    for wid in workflow_ids:
        await stack.client.get_workflow_handle(wid).terminate("test done")


async def test_retried_webhook_is_counted_once_and_severity_only_rises(stack: Stack):
    rule = f"dedup-{uuid.uuid4().hex[:6]}"
    first = unique_alert(rule=rule, alert_id="same", severity="Sev3")
    async with httpx.AsyncClient() as http:
        a = (await stack.post_alert(http, first)).json()
        b = (await stack.post_alert(http, first)).json()  # Azure's retry: same instance
        worse = unique_alert(rule=rule, severity="Sev1")
        await stack.post_alert(http, worse)
        milder = unique_alert(rule=rule, severity="Sev4")
        await stack.post_alert(http, milder)
    assert (a["deduplicated"], b["deduplicated"]) == (False, True)
    state = (await view(stack.client, a["workflow_id"])).state
    assert state.alert_count == 3
    assert state.severity == "Sev1"
    kinds = [e.kind for e in await timeline(stack.client, a["workflow_id"])]
    assert kinds.count("severity_raised") == 1

    async def listed_as_sev1() -> bool:
        query = f"WorkflowId = '{a['workflow_id']}' AND IncidentSeverity = 'Sev1'"
        return (await stack.client.count_workflows(query)).count == 1

    await eventually(listed_as_sev1)
    await stack.client.get_workflow_handle(a["workflow_id"]).terminate("test done")


async def test_fired_then_resolved_resolves(stack: Stack):
    fired = unique_alert(alert_id="instance-1")
    resolved = copy.deepcopy(fired)
    resolved["data"]["essentials"]["monitorCondition"] = "Resolved"
    resolved["data"]["essentials"]["resolvedDateTime"] = "2025-04-15T18:30:00Z"
    async with httpx.AsyncClient() as http:
        opened = (await stack.post_alert(http, fired)).json()
        answer = await stack.post_alert(http, resolved)
    assert answer.status_code == 202 and answer.json()["condition"] == "Resolved"
    wid = opened["workflow_id"]

    async def resolved_state():
        state = (await view(stack.client, wid)).state
        return state if state.status is IncidentStatus.RESOLVED else None

    state = await eventually(resolved_state)
    assert state.resolved_by == "azure-monitor"
    assert state.alert_count == 1

    async def listed_resolved() -> bool:
        query = f"WorkflowId = '{wid}' AND IncidentStatus = 'resolved'"
        return (await stack.client.count_workflows(query)).count == 1

    await eventually(listed_resolved)
    await stack.client.get_workflow_handle(wid).terminate("test done")


async def test_resolved_alert_without_incident_opens_nothing(stack: Stack):
    body = unique_alert(monitorCondition="Resolved")
    async with httpx.AsyncClient() as http:
        response = await stack.post_alert(http, body)
    assert response.status_code == 202
    assert "no open incident" in response.json()["note"]
    assert not await exists(stack.client, response.json()["workflow_id"])


async def test_human_resolve_and_refused_updates_leave_history_untouched(stack: Stack):
    async with httpx.AsyncClient() as http:
        opened = (await stack.post_alert(http, unique_alert())).json()
    handle = stack.client.get_workflow_handle(opened["workflow_id"])
    await eventually(lambda: _plan_loaded(stack.client, opened["workflow_id"]))
    before = [e async for e in handle.fetch_history_events()]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await decide(handle, "resolve", Resolve(by="mallory"), result_type=UpdateResult)
    assert "'mallory' is not on the roster" in str(refused.value.cause)
    after = [e async for e in handle.fetch_history_events()]
    # Paging may still be under way; what matters is that no update was recorded.
    added = [EventType.Name(e.event_type) for e in after[len(before) :]]
    assert not [k for k in added if "UPDATE" in k], "a refused update leaves no trace"
    result = await decide(
        handle, "resolve", Resolve(by="carol", note="rolled back"), result_type=UpdateResult
    )
    assert result.status is IncidentStatus.RESOLVED and result.changed
    entries = await timeline(stack.client, opened["workflow_id"])
    assert entries[-1].kind == "resolved" and "rolled back" in entries[-1].summary
    await handle.terminate("test done")


async def _plan_loaded(client: Client, workflow_id: str) -> bool:
    return (await view(client, workflow_id)).plan_loaded


BAD_INPUTS = [
    ("not json", b"{not json", 400, "not JSON"),
    ("empty", b"", 400, "empty body"),
    ("array", b"[]", 422, "JSON object"),
    ("wrong schema", {"schemaId": "AzureMonitorMetricAlert", "data": {}}, 422, "schemaId"),
    (
        "no essentials",
        {"schemaId": "azureMonitorCommonAlertSchema", "data": {}},
        422,
        "data.essentials",
    ),
    ("no alertId", "alertId", 422, "data.essentials.alertId"),
    ("no monitorCondition", "monitorCondition", 422, "data.essentials.monitorCondition"),
    ("too large", b"{" + b" " * (1024 * 1024 + 10) + b"}", 413, "limit"),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
async def test_bad_input_is_refused_and_starts_nothing(stack: Stack, name, body, status, message):
    rule = f"bad-{uuid.uuid4().hex[:8]}"
    if isinstance(body, str):  # drop one essentials field from a valid alert
        valid = unique_alert(rule=rule)
        del valid["data"]["essentials"][body]
        body = valid
    async with httpx.AsyncClient() as http:
        response = await stack.post_alert(http, body)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    await _assert_nothing_started(stack.client, rule)


async def test_intake_requires_the_token(stack: Stack):
    rule = f"auth-{uuid.uuid4().hex[:8]}"
    body = unique_alert(rule=rule)
    async with httpx.AsyncClient() as http:
        missing = await stack.post_alert(http, body, params={})
        wrong = await stack.post_alert(http, body, params={"token": stack.token + "x"})
        bearer = await stack.post_alert(
            http, body, params={}, headers={"Authorization": f"Bearer {stack.token}"}
        )
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "token" in missing.json()["message"]
    assert stack.token not in missing.text + wrong.text
    assert bearer.status_code == 202
    await stack.client.get_workflow_handle(bearer.json()["workflow_id"]).terminate("test done")


async def _assert_nothing_started(client: Client, rule: str) -> None:
    from stanch.models.alert import fingerprint

    targets = sample()["data"]["essentials"]["alertTargetIDs"]
    assert not await exists(client, workflow_id_for(fingerprint(rule, targets)))
