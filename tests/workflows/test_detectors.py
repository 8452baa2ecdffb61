"""Detectors from stanch.yaml run as Temporal Schedules and open incidents
through the same intake as Azure Monitor alerts."""

from __future__ import annotations

import asyncio

import pytest

from stanch.client.ids import workflow_id_for
from stanch.client.schedules import PREFIX, sync_detectors
from stanch.models.alert import fingerprint
from stanch.models.config import Detector, parse_config
from stanch.testing.estate import VM1, VM2
from stanch.workflows.incident import IncidentWorkflow
from tests.support.stack import Stack


async def test_detector_schedule_opens_an_incident_through_the_intake(stack: Stack):
    errors = Detector(
        name="vm1-errors",
        resource_id=VM1,
        every=60,
        query="Event | where EventLevelName == 'Error'",
    )
    quiet = Detector(name="vm2-cpu", resource_id=VM2, every=60, metric="Percentage CPU", above=95)
    ids = await sync_detectors(stack.client, [errors, quiet], stack.task_queue)
    assert ids == [f"{PREFIX}vm1-errors", f"{PREFIX}vm2-cpu"]
    try:
        for schedule_id in ids:
            await stack.client.get_schedule_handle(schedule_id).trigger()
        incident = fingerprint("stanch-detector-vm1-errors", [VM1])
        handle = stack.client.get_workflow_handle(workflow_id_for(incident))
        for _ in range(200):
            try:
                state = (await handle.query(IncidentWorkflow.state)).state
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the detector opened no incident")
        assert state.alert_rule == "stanch-detector-vm1-errors"
        assert state.monitoring_service == "stanch detector"
        quiet_incident = fingerprint("stanch-detector-vm2-cpu", [VM2])
        with pytest.raises(Exception):  # noqa: B017 - a healthy VM opens nothing
            await stack.client.get_workflow_handle(workflow_id_for(quiet_incident)).describe()

        # Removing a detector from the policy removes its schedule.
        assert await sync_detectors(stack.client, [errors], stack.task_queue) == [ids[0]]
        for _ in range(100):  # schedule listing is eventually consistent
            listed = [s.id async for s in await stack.client.list_schedules()]
            if ids[1] not in listed:
                break
            await asyncio.sleep(0.1)
        assert ids[1] not in listed
        await handle.terminate("test done")
    finally:
        await sync_detectors(stack.client, [], stack.task_queue)


def test_detector_config_errors_name_the_field():
    from stanch.models.config import ConfigError

    base = {
        "roster": [{"id": "a"}],
        "escalation_policies": {"default": {"tiers": [{"people": ["a"]}]}},
    }
    with pytest.raises(ConfigError) as both:
        parse_config(
            {
                **base,
                "detectors": [
                    {"name": "x", "resource_id": VM1, "query": "T", "metric": "m", "above": 1}
                ],
            }
        )
    assert (
        "detectors[0]" in both.value.problems[0]
        and "exactly one of query or metric" in both.value.problems[0]
    )
    with pytest.raises(ConfigError) as fast:
        parse_config(
            {**base, "detectors": [{"name": "x", "resource_id": VM1, "query": "T", "every": "10s"}]}
        )
    assert "at least 1m" in fast.value.problems[0]
