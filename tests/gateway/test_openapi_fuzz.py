"""Schemathesis over the gateway's own /openapi.json, against the real gateway,
worker and dev server: for every operation, schema-valid and schema-breaking
requests (positive and negative generation) never get a 5xx. Half the cases
aim at a real incident with a pending approval, so the workflows' validators
are fuzzed too, not only the 404 path."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from stanch.client.ids import workflow_id_for
from tests.support.oncall import open_vm_incident
from tests.support.plans import API_TOKENS, auth
from tests.support.stack import Stack

EXAMPLES = 25  # per operation and generation mode


def fuzz(url: str, incident: str) -> Counter[int]:
    """Runs in a thread: the gateway and worker keep serving on the test's loop."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    seen: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {API_TOKENS['admin']}"}
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"/openapi.json does not load: {result.err()}")
        operation = result.ok()
        strategies = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(generation_mode=mode))
            if "{incident_id}" in operation.path:
                strategies.append(
                    operation.as_strategy(
                        generation_mode=mode, path_parameters={"incident_id": incident}
                    )
                )

        @settings(
            max_examples=EXAMPLES * len(strategies),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def no_server_error(case: Any) -> None:
            response = case.call(base_url=url, headers=headers, timeout=30)
            seen[response.status_code] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}"
            )
            assert API_TOKENS["admin"] not in response.text

        no_server_error()
    return seen


async def test_no_generated_request_gets_a_5xx(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_vm_incident(stack, http)
        seen = await asyncio.to_thread(fuzz, stack.url, incident)
        # The run reached past validation into the workflows, and refused there too.
        assert seen[200] > 0 and seen[422] > 0 and seen[404] > 0, seen
        still = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
        assert still.status_code == 200, "the incident survived the fuzzing"
    await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
