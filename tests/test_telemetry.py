"""Structured logs: one JSON object per line, with the incident's ids."""

from __future__ import annotations

import asyncio
import json
import logging

from telemetry import JsonFormatter, follow_log_level


def test_json_log_line_carries_incident_workflow_and_run_ids():
    record = logging.LogRecord(
        "stanch.workflow", logging.INFO, __file__, 1, "paged %s", ("tier 1",), None
    )
    record.temporal_workflow = {
        "workflow_id": "incident-abc123/quarantine_vm-1-3",
        "run_id": "run-1",
        "workflow_type": "quarantine_vm",
    }
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "paged tier 1" and line["level"] == "info"
    assert (line["incident_id"], line["workflow_id"], line["run_id"]) == (
        "abc123",
        "incident-abc123/quarantine_vm-1-3",
        "run-1",
    )


async def test_log_level_follows_the_store():
    level = {"value": "debug"}
    root = logging.getLogger()
    before = root.level
    task = asyncio.create_task(follow_log_level(lambda: level["value"], every=0.01))
    try:
        await asyncio.sleep(0.05)
        assert root.level == logging.DEBUG
        level["value"] = "error"
        await asyncio.sleep(0.05)
        assert root.level == logging.ERROR
    finally:
        task.cancel()
        root.setLevel(before)
