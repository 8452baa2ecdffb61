"""Both audit stores anchor what a process appended between checkpoints with
one piece of code (stores/audit/anchoring.py): when the process stops, and
within T seconds by a timer. Each store is shown here, in real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stanch.harness.services import stanch_env
from stanch.models.audit import AuditEntry
from stanch.stores.select import audit_log
from tests.support.postgres import database_env, database_settings, query, run_stanch

# A worker that records three facts and stops: N and T are far off, so only
# its way out can anchor them.
STOPPING = """
from stanch.models.audit import AuditEntry
from stanch.models.settings import Settings
from stanch.stores.select import audit_log

log = audit_log(Settings())
for i in range(3):
    fact = AuditEntry(incident_id="inc-1", actor="worker", action="page", outcome="sent")
    log.append(f"stopping/{i}", fact)
"""
FAR_OFF = {"audit_checkpoint_every": 1000, "audit_checkpoint_seconds": 3600}


def stops_after_appending(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", STOPPING], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr


def verified(env: dict[str, str]) -> str:
    result = run_stanch(env, "audit", "verify", "--no-temporal")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_sqlite_writer_that_stops_anchors_its_last_records(tmp_path: Path):
    env = stanch_env(state_dir=tmp_path, **FAR_OFF)
    stops_after_appending(env)
    lines = (tmp_path / "audit.checkpoints").read_text().splitlines()
    # Its first append is anchored at once; the other two only on its way out.
    assert json.loads(lines[-1])["seq"] == 3, lines
    assert "3 records, chain intact" in verified(env)


def test_a_postgres_writer_that_stops_anchors_its_last_records(database_url: str, tmp_path: Path):
    env = database_env(database_url, tmp_path, **FAR_OFF)
    stops_after_appending(env)
    assert query(database_url, "SELECT max(seq) FROM audit_checkpoints") == [(3,)]
    assert "3 records, chain intact" in verified(env)


def test_a_postgres_append_is_anchored_within_t_seconds(database_url: str, tmp_path: Path):
    settings = database_settings(
        database_url, tmp_path, audit_checkpoint_every=1000, audit_checkpoint_seconds=0.3
    )
    log = audit_log(settings)
    for i in range(2):
        log.append(
            f"timed/{i}", AuditEntry(incident_id="inc-1", actor="a", action="ack", outcome="done")
        )

    def anchored() -> bool:
        return query(database_url, "SELECT max(seq) FROM audit_checkpoints") == [(2,)]

    until(anchored, "the timer never anchored record 2")
