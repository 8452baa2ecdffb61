"""Structured logs: one JSON object per line, with the incident's ids."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from stanch.telemetry import QUIET_LOGGERS, JsonFormatter, follow_log_level


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


async def until(check: Callable[[], bool]) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in 10 s")


async def test_log_level_follows_the_store():
    level = {"value": "debug"}
    root = logging.getLogger()
    before = root.level
    task = asyncio.create_task(follow_log_level(lambda: level["value"], every=0.01))
    try:
        await until(lambda: root.level == logging.DEBUG)
        level["value"] = "error"
        await until(lambda: root.level == logging.ERROR)
    finally:
        task.cancel()
        root.setLevel(before)


async def test_debug_from_the_store_leaves_the_http_client_loggers_at_warning():
    """Review finding #3: httpx logs each request's URL, a webhook's credential."""
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in QUIET_LOGGERS}
    level = {"value": "debug"}
    task = asyncio.create_task(follow_log_level(lambda: level["value"], every=0.01))
    try:
        await until(lambda: root.level == logging.DEBUG)
        assert all(logging.getLogger(n).level == logging.WARNING for n in QUIET_LOGGERS)
        level["value"] = "error"
        await until(lambda: root.level == logging.ERROR)
        assert all(logging.getLogger(n).level == logging.ERROR for n in QUIET_LOGGERS)
    finally:
        task.cancel()
        root.setLevel(saved[0])
        for name, was in saved[1].items():
            logging.getLogger(name).setLevel(was)


async def test_a_store_that_cannot_be_read_does_not_end_the_follower():
    calls = {"n": 0}

    def broken() -> str | None:
        calls["n"] += 1
        raise OSError("toggles.json: permission denied")

    task = asyncio.create_task(follow_log_level(broken, every=0.01))
    try:
        while calls["n"] < 3:
            assert not task.done(), task
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
