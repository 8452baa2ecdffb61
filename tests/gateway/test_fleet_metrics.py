"""The gateway's /metrics reports the fleet's state (gateway/fleet_metrics.py)
read from Temporal: the worker polling the stack's task queue, and an incident
open by its severity, once an alert has opened one."""

from __future__ import annotations

import re

import httpx

from stanch.harness.waiting import eventually
from tests.support.alerts import unique_alert
from tests.support.stack import Stack


async def test_gateway_metrics_show_pollers_and_open_incidents(stack: Stack):
    async with httpx.AsyncClient(timeout=10) as http:

        async def gauge(name: str, labels: str) -> float | None:
            text = (await http.get(f"{stack.url}/metrics")).text
            found = re.search(rf"^{name}{{{labels}}} (\S+)$", text, re.M)
            return float(found.group(1)) if found else None

        queue = f'kind="workflow",task_queue="{stack.task_queue}"'
        assert await eventually(lambda: gauge("stanch_task_queue_pollers", queue), 30) == 1

        answer = await stack.post_alert(http, unique_alert(severity="Sev2"))
        assert answer.status_code == 202, answer.text

        async def one_open() -> bool:
            return await gauge("stanch_incidents_open", 'severity="Sev2"') == 1

        await eventually(one_open, 30, "the incident counted open")
        text = (await http.get(f"{stack.url}/metrics")).text
        assert re.search(r"^stanch_fleet_view_up 1\.0$", text, re.M)
        await stack.client.get_workflow_handle(answer.json()["workflow_id"]).terminate("done")
