"""Alert intake under generated input: never a 5xx, never a crash, and nothing
recorded or started for anything it refuses."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stanch.stores.audit import SqliteAuditLog
from tests.support.stack import Stack

SAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "examples"
        / "alerts"
        / "test_action_metric_static_threshold.json"
    ).read_text()
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
ESSENTIALS = list(SAMPLE["data"]["essentials"])


@st.composite
def mutated_alerts(draw: Any) -> Any:
    """A real alert with one essentials field removed or replaced by anything."""
    body = copy.deepcopy(SAMPLE)
    field = draw(st.sampled_from(ESSENTIALS))
    if draw(st.booleans()):
        del body["data"]["essentials"][field]
    else:
        body["data"]["essentials"][field] = draw(JSON)
    return body


BODIES = st.one_of(
    JSON.map(json.dumps),
    mutated_alerts().map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=200),
)


async def test_intake_never_fails_on_generated_input(stack: Stack):
    audit = SqliteAuditLog(stack.config.parent / "audit.db")
    results: list[Any] = []

    def received() -> int:  # pages and plans of earlier incidents land here too
        return sum(1 for r in audit.records() if r["record"]["action"] == "alert received")

    @settings(
        max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(body=BODIES)
    def generate(body: Any) -> None:
        results.append(body)

    generate()
    async with httpx.AsyncClient(timeout=30) as http:
        for body in results:
            before = received()
            content = body if isinstance(body, bytes | str) else json.dumps(body)
            answer = await stack.post_alert(http, content)
            assert answer.status_code < 500, (answer.status_code, answer.text, content)
            if answer.status_code != 202:
                assert answer.status_code in (400, 413, 422), answer.status_code
                assert "message" in answer.json()
                assert received() == before, "a refused alert was recorded"
    for execution in [
        e async for e in stack.client.list_workflows(f"TaskQueue = '{stack.task_queue}'")
    ]:
        await stack.client.get_workflow_handle(execution.id).terminate("fuzz done")
