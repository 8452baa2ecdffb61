"""MTTA and MTTR per severity: exact on known incidents, and over real HTTP
from live and finished incidents on the dev server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import yaml
from temporalio.client import WorkflowExecutionStatus

from stanch.client.ids import workflow_id_for
from stanch.harness.waiting import eventually
from stanch.models.incident import IncidentState
from stanch.models.response_times import response_times
from stanch.models.severity import Severity
from tests.support.alerts import unique_alert
from tests.support.oncall import sign_in_with_form
from tests.support.plans import auth
from tests.support.stack import Stack

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def incident(severity: str, opened: int, acked: int | None, resolved: int | None) -> IncidentState:
    """Minutes after T0."""

    def at(minutes: int | None) -> datetime | None:
        return None if minutes is None else T0 + timedelta(minutes=minutes)

    return IncidentState(
        incident_id=uuid.uuid4().hex[:20],
        workflow_id="w",
        title="t",
        severity=Severity(severity),
        alert_rule="r",
        opened_at=at(opened),
        acknowledged_at=at(acked),
        resolved_at=at(resolved),
    )


def test_means_per_severity_most_severe_first_within_the_window():
    states = [
        incident("Sev2", 0, 4, 30),
        incident("Sev2", 10, 16, None),  # acknowledged, still open
        incident("Sev2", 20, None, None),  # nobody yet: counts, has no MTTA
        incident("Sev0", 5, 6, 65),
        incident("Sev0", -600, 1, 2),  # opened before the window: not counted
    ]
    times = response_times(states, T0 - timedelta(hours=1), T0 + timedelta(hours=2))
    sev0, sev2 = times.severities
    assert (sev0.severity, sev0.incidents, sev0.mtta_seconds, sev0.mttr_seconds) == (
        "Sev0",
        1,
        60.0,
        3600.0,
    )
    assert (sev2.incidents, sev2.acknowledged, sev2.resolved) == (3, 2, 1)
    assert sev2.mtta_seconds == 300.0  # (4 + 6) / 2 minutes
    assert sev2.mttr_seconds == 1800.0
    assert response_times([], T0, T0).severities == []


async def test_response_times_over_http_count_open_and_closed_incidents(stack: Stack):
    service = f"rt-{uuid.uuid4().hex[:6]}"
    policy = yaml.safe_load(stack.config.read_text())
    policy["services"] = [
        {"name": service, "escalation_policy": "default", "match": {"rules": [f"{service}-*"]}}
    ]
    policy["incident"]["reopen_window"] = "1s"  # resolved incidents close at once
    stack.config.write_text(yaml.safe_dump(policy))
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        opened = []
        for name in ("a", "b"):
            answer = await stack.post_alert(
                http, unique_alert(f"{service}-{name}", severity="Sev1")
            )
            assert answer.status_code == 202, answer.text
            opened.append(answer.json()["incident_id"])
        first, second = opened
        for verb in ("ack", "resolve"):
            done = await http.post(
                f"/api/incidents/{first}/{verb}", json={}, headers=auth("responder")
            )
            assert done.status_code == 200, done.text

        async def closed() -> bool:
            handle = stack.client.get_workflow_handle(workflow_id_for(first))
            return (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED

        await eventually(closed)

        async def counted() -> dict | None:
            answer = await http.get(
                "/api/response-times",
                params={"window": "1h", "service": service},
                headers=auth("viewer"),
            )
            assert answer.status_code == 200, answer.text
            rows = answer.json()["severities"]
            return rows[0] if rows and rows[0]["incidents"] == 2 else None

        row = await eventually(counted)  # visibility catches up within a second or two
        assert row["severity"] == "Sev1"
        assert (row["acknowledged"], row["resolved"]) == (1, 1)
        assert 0 < row["mtta_seconds"] <= row["mttr_seconds"] < 60

        bad = await http.get(
            "/api/response-times", params={"window": "forever"}, headers=auth("viewer")
        )
        assert bad.status_code == 422 and "window" in bad.json()["message"]
        assert (await http.get("/api/response-times")).status_code == 401

        await sign_in_with_form(http, auth("viewer")["Authorization"][7:])
        home = await http.get("/", params={"window": "24h"})
        assert "Response times, last 24h" in home.text and "MTTA" in home.text
        draft = await http.get(f"/incidents/{first}/postmortem")
        assert draft.status_code == 200 and draft.headers["content-type"].startswith(
            "text/markdown"
        )
        assert "Postmortem" in draft.text or "postmortem" in draft.text
    await stack.client.get_workflow_handle(workflow_id_for(second)).terminate("test done")
