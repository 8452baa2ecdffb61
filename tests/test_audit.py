"""The audit trail: tampering is found and named; retried writes record once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.audit import AuditActivities, SqliteAuditLog
from models.runbook import AuditEntry


def filled(tmp_path: Path, count: int = 5) -> SqliteAuditLog:
    log = SqliteAuditLog(tmp_path / "audit.db")
    for i in range(1, count + 1):
        log.append(
            f"k{i}",
            AuditEntry(
                incident_id="inc",
                actor="alice",
                action=f"step {i}",
                outcome="succeeded",
                details={"n": i},
            ),
        )
    return log


def tamper(log: SqliteAuditLog, sql: str, *args: object) -> None:
    with sqlite3.connect(log.path) as db:
        db.execute(sql, args)


def test_an_intact_log_verifies(tmp_path):
    assert filled(tmp_path).verify() == []


def test_an_edited_record_is_named(tmp_path):
    log = filled(tmp_path)
    row = log.records()[2]
    record = {**row["record"], "outcome": "failed"}
    tamper(log, "UPDATE audit SET record = ? WHERE seq = 3", json.dumps(record, sort_keys=True))
    assert log.verify() == ["record 3 was edited: its content no longer matches its hash"]


def test_an_edit_with_a_recomputed_hash_breaks_the_chain(tmp_path):
    from activities.audit import chain_hash

    log = filled(tmp_path)
    row = log.records()[2]
    record = {**row["record"], "outcome": "failed"}
    tamper(
        log,
        "UPDATE audit SET record = ?, hash = ? WHERE seq = 3",
        json.dumps(record, sort_keys=True),
        chain_hash(row["prev_hash"], record),
    )
    assert log.verify() == [
        "the chain breaks after record 3: a record there was removed or rewritten"
    ]


def test_a_removed_record_is_named(tmp_path):
    log = filled(tmp_path)
    tamper(log, "DELETE FROM audit WHERE seq = 2")
    problems = log.verify()
    assert "record(s) 2 removed (the sequence jumps to 3)" in problems


def test_reordered_records_are_named(tmp_path):
    log = filled(tmp_path)
    rows = {r["seq"]: r for r in log.records()}
    for seq, source in ((2, 4), (4, 2)):
        r = rows[source]
        tamper(
            log,
            "UPDATE audit SET key = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            f"swap{seq}",
            json.dumps(r["record"], sort_keys=True),
            r["prev_hash"],
            r["hash"],
            seq,
        )
    assert log.verify() == ["records 4, 2 are out of order (written as 1, 4, 3, 2, 5)"]


async def test_a_retried_activity_records_once(tmp_path):
    log = SqliteAuditLog(tmp_path / "audit.db")
    activities = AuditActivities(log)
    entry = AuditEntry(incident_id="inc", actor="runbook:x", action="lock", outcome="succeeded")
    env = ActivityEnvironment()
    first = await env.run(activities.record_audit, entry)
    again = await env.run(activities.record_audit, entry)  # same workflow and activity id
    assert first == again and len(log.records()) == 1


def test_secrets_never_reach_the_log(tmp_path):
    log = SqliteAuditLog(tmp_path / "audit.db")
    log.append(
        "k",
        AuditEntry(
            incident_id=None,
            actor="a",
            action="x",
            outcome="y",
            details={"webhook": {"token": "s3cret", "url_secret": "x"}},
        ),
    )
    assert "s3cret" not in json.dumps(log.records())


def test_cli_verify_and_export(tmp_path):
    log = filled(tmp_path, 3)

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "audit", *a],
            capture_output=True,
            text=True,
            env={"STANCH_STATE_DIR": str(tmp_path), "PATH": ""},
        )

    ok = run("verify")
    assert ok.returncode == 0 and "3 records, chain intact" in ok.stdout
    exported = run("export", "--since", "2000-01-01")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["record"]["action"] for line in lines] == ["step 1", "step 2", "step 3"]
    assert run("export", "--since", "2999-01-01").stdout == ""
    assert run("export", "--since", "yesterday").returncode == 2
    tamper(log, "DELETE FROM audit WHERE seq = 2")
    broken = run("verify")
    assert broken.returncode == 1 and "record(s) 2 removed" in broken.stdout


@pytest.mark.parametrize("count", [1, 50])
def test_chain_of_any_length(tmp_path, count):
    assert filled(tmp_path, count).verify() == []
