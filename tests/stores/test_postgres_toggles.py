"""The kill switch and log level in PostgreSQL (stores/postgres/toggles.py): a
flip made by one process reaches another through LISTEN/NOTIFY within a
second, and a database that cannot be reached halts remediation (the check
says why) while the gateway's toggle endpoints answer 503 and change nothing."""

from __future__ import annotations

import json
import secrets
import selectors
import statistics
import subprocess
import time
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from stanch.activities.toggles import ToggleActivities
from stanch.gateway.controls import kill_switch_banner
from stanch.harness.ports import free_port
from stanch.harness.postgres import running_postgres
from stanch.harness.waiting import eventually
from stanch.models.toggles import RemediationCheck
from stanch.stores.postgres.toggles import PostgresToggleStore, wait_until_live
from stanch.stores.select import close_databases, toggle_store
from tests.support.plans import REMEDIATION, auth, policy_file
from tests.support.postgres import (
    AUDIT_KEY,
    database_env,
    database_settings,
    new_database,
    python_process,
    query,
)
from tests.support.stack import gateway_at, stack_settings

FLIPS = 12
BOUND = 1.0  # seconds: the promise for a flip to reach every process

# Another worker: follows the row and prints each change it is notified of.
WATCHER = f"""
import json, time
from stanch.models.settings import Settings
from stanch.stores.select import toggle_store
from stanch.stores.postgres.toggles import wait_until_live

store = toggle_store(Settings())
wait_until_live(store)
version = store.version()
print(json.dumps({{"ready": version}}), flush=True)
for _ in range({FLIPS}):
    version = store.wait_for_change(version, 60)
    seen = time.time()
    view = store.view()
    print(json.dumps({{"version": version, "seen": seen, "halted": view.remediation_halted,
                      "level": view.log_level.level if view.log_level else None}}), flush=True)
"""


def next_line(process: subprocess.Popen[str], timeout: float) -> str | None:
    """The process's next line of output, or None if none came within `timeout`."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as waiting:
        waiting.register(process.stdout, selectors.EVENT_READ)
        if not waiting.select(timeout):
            return None
    return process.stdout.readline()


def test_a_flip_reaches_another_process_within_a_second(database_url: str, tmp_path: Path):
    store = toggle_store(database_settings(database_url, tmp_path))
    watcher = python_process(WATCHER, database_env(database_url, tmp_path / "watcher"))
    try:
        ready = next_line(watcher, 60)
        assert ready and "ready" in json.loads(ready), watcher.stderr and watcher.stderr.read()
        delays = []
        for flip in range(FLIPS):
            asked = time.time()
            if flip % 3 == 2:
                store.set_log_level(("debug", "info")[flip % 2], by="dave")
            else:
                store.set(flip % 2 == 1, None, by="dave", reason=f"flip {flip}")
            # Waits for the other process's word, bounded by the promise itself.
            line = next_line(watcher, BOUND)
            assert line, f"flip {flip} not seen by the other process within {BOUND}s"
            seen = json.loads(line)
            assert seen["version"] == flip + 1, seen
            if flip % 3 != 2:
                assert seen["halted"] == (flip % 2 == 0), seen
            delays.append(seen["seen"] - asked)
    finally:
        watcher.kill()
        watcher.wait()
    print(
        f"flip seen by another process: median {statistics.median(delays) * 1000:.1f} ms, "
        f"max {max(delays) * 1000:.1f} ms over {FLIPS} flips"
    )
    assert max(delays) <= BOUND


def test_the_periodic_reread_catches_a_change_made_without_notify(
    database_url: str, tmp_path: Path
):
    store = toggle_store(database_settings(database_url, tmp_path))
    assert isinstance(store, PostgresToggleStore)
    store.refresh_seconds = 0.2  # the fallback for a notification lost on the way
    wait_until_live(store)
    before = store.version()
    doc = {"remediation": {"enabled": False, "by": "dba"}}
    query(database_url, "UPDATE toggles SET doc = %s, version = version + 1", json.dumps(doc))
    # The listener re-reads on its own (its next period begins once the
    # current wait for a notification ends: at most two periods).
    assert store.wait_for_change(before, 10) == (before or 0) + 1
    assert store.view().remediation_halted


async def test_an_unreachable_database_halts_remediation_and_the_gateway_answers_503(
    ts_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
):
    with running_postgres() as server:  # its own server: this test stops it
        url = new_database(server)
        port, token = free_port(), secrets.token_urlsafe(16)
        config = policy_file(tmp_path, **REMEDIATION)
        settings = stack_settings(
            ts_env,
            tmp_path,
            task_queue,
            config,
            token,
            port,
            database_url=SecretStr(url),
            audit_key=SecretStr(AUDIT_KEY),
        )
        check = ToggleActivities(toggle_store(settings)).check_remediation
        asked = RemediationCheck(runbook="quarantine_vm")
        try:
            assert (await ActivityEnvironment().run(check, asked)).allowed
            async with gateway_at(settings, port) as gateway, httpx.AsyncClient(timeout=30) as http:
                base = f"{gateway}/api/toggles"
                assert (await http.get(base, headers=auth("viewer"))).status_code == 200
                # The gateway writes the fleet's row and the fleet's trail.
                off = await http.put(
                    f"{base}/remediation", json={"enabled": False}, headers=auth("admin")
                )
                assert off.status_code == 200 and off.json()["remediation_halted"], off.text
                assert query(url, "SELECT doc->'remediation'->>'enabled' FROM toggles") == [
                    ("false",)
                ]
                assert not (await ActivityEnvironment().run(check, asked)).allowed
                actions = query(url, "SELECT record::jsonb->>'action' FROM audit_records")
                assert ("toggle remediation",) in actions
                on = await http.put(
                    f"{base}/remediation", json={"enabled": True}, headers=auth("admin")
                )
                assert on.status_code == 200 and not on.json()["remediation_halted"], on.text
                before = query(url, "SELECT version, doc FROM toggles")
                trail = query(url, "SELECT count(*) FROM audit_records")

                server.stop()
                answer = await ActivityEnvironment().run(check, asked)
                assert not answer.allowed
                assert answer.reason is not None and "cannot be reached" in answer.reason

                async def refused() -> bool:
                    seen = await http.get(base, headers=auth("viewer"))
                    return seen.status_code == 503

                await eventually(refused, 15, "GET /api/toggles answering 503")
                off = await http.put(
                    f"{base}/remediation",
                    json={"enabled": False, "reason": "db down"},
                    headers=auth("admin"),
                )
                assert off.status_code == 503, off.text
                assert "cannot be reached" in off.json()["message"]
                assert off.headers["retry-after"]
                level = await http.post(
                    f"{base}/log-level", json={"level": "debug"}, headers=auth("admin")
                )
                assert level.status_code == 503, level.text
                # What every dashboard page says first (the dashboard's listing
                # needs a visibility store the time-skipping server lacks).
                assert "Remediation halted" in kill_switch_banner(settings)

                server.start()

                async def allowed_again() -> bool:
                    return (await ActivityEnvironment().run(check, asked)).allowed

                await eventually(allowed_again, 30, "remediation allowed once the database is back")
                assert query(url, "SELECT version, doc FROM toggles") == before, "nothing changed"
                assert query(url, "SELECT count(*) FROM audit_records") == trail
        finally:
            close_databases()
