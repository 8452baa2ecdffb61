"""The audit store: keyed chain, checkpoints, migration of older trails, keys,
retried writes recorded once, file modes, and no secret ever recorded.
(The attacks on a real incident's trail are in test_audit_tampering.py.)"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from stanch import telemetry
from stanch.activities.audit import AuditActivities
from stanch.models.audit import AuditEntry
from stanch.models.settings import Settings
from stanch.stores.audit import AuditKeyError, SqliteAuditLog
from stanch.stores.audit.chain import GENESIS, canonical, unkeyed_hash


def entry(n: int, **details: object) -> AuditEntry:
    return AuditEntry(
        incident_id="inc",
        actor="alice",
        action=f"step {n}",
        outcome="succeeded",
        details={"n": n, **details},
    )


def filled(tmp_path: Path, count: int = 5, **options: float) -> SqliteAuditLog:
    log = SqliteAuditLog(tmp_path / "audit.db", **options)  # type: ignore[arg-type]
    for i in range(1, count + 1):
        log.append(f"k{i}", entry(i))
    return log


def tamper(log: SqliteAuditLog, sql: str, *args: object) -> None:
    with sqlite3.connect(log.path) as db:
        db.execute(sql, args)


def checkpoints(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "audit.checkpoints").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_an_intact_log_verifies(tmp_path):
    log = filled(tmp_path)
    assert log.verify() == []
    assert {r["version"] for r in log.records()} == {1}


def test_an_edited_record_is_named(tmp_path):
    log = filled(tmp_path)
    record = {**log.records()[2]["record"], "outcome": "failed"}
    tamper(log, "UPDATE audit SET record = ? WHERE seq = 3", canonical(record))
    assert log.verify() == ["record 3: edited: its content no longer matches its MAC"]


def test_an_edit_with_its_hash_recomputed_is_named_once(tmp_path):
    log = filled(tmp_path)
    row = log.records()[2]
    record = {**row["record"], "outcome": "failed"}
    tamper(
        log,
        "UPDATE audit SET record = ?, hash = ? WHERE seq = 3",
        canonical(record),
        unkeyed_hash(row["prev_hash"], record),
    )
    assert log.verify() == [
        "record 3: edited: record 3 was edited and its hash recomputed with plain SHA-256"
    ]


def test_a_removed_record_is_named(tmp_path):
    log = filled(tmp_path)
    tamper(log, "DELETE FROM audit WHERE seq = 2")
    assert log.verify() == [
        "record 2: removed: record 2 removed from the middle: record 3 follows a record that is gone"
    ]


def test_reordered_records_are_named(tmp_path):
    log = filled(tmp_path)
    rows = {r["seq"]: r for r in log.records()}
    for seq, source in ((2, 4), (4, 2)):
        r = rows[source]
        tamper(
            log,
            "UPDATE audit SET key = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            f"swap{seq}",
            canonical(r["record"]),
            r["prev_hash"],
            r["hash"],
            seq,
        )
    for seq, source in ((2, 4), (4, 2)):
        tamper(log, "UPDATE audit SET key = ? WHERE seq = ?", rows[source]["key"], seq)
    assert log.verify() == [
        "record 2: reordered: records 2, 4 are out of order: the chain runs 1, 4, 3, 2, 5"
    ]


def test_a_forged_checkpoint_is_named(tmp_path):
    log = filled(tmp_path)
    path = tmp_path / "audit.checkpoints"
    lines = path.read_text().splitlines()
    forged = {**json.loads(lines[-1]), "seq": 3}
    path.write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    (problem,) = log.verify()
    assert problem.startswith("record 3: checkpoint tampered: checkpoint line")
    assert "forged or edited" in problem


async def test_a_retried_activity_records_once(tmp_path):
    log = SqliteAuditLog(tmp_path / "audit.db")
    activities = AuditActivities(log)
    record = AuditEntry(incident_id="inc", actor="runbook:x", action="lock", outcome="succeeded")
    env = ActivityEnvironment()
    first = await env.run(activities.record_audit, record)
    again = await env.run(activities.record_audit, record)  # same workflow, run and activity id
    assert first == again and len(log.records()) == 1
    assert (first.seq, first.hash) == (1, log.records()[0]["hash"])


def test_secrets_never_reach_the_log(tmp_path):
    log = SqliteAuditLog(tmp_path / "audit.db")
    pasted = (
        "curl -H 'Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.abc.def' "
        "https://acct.blob.core.windows.net/c/x?sv=2024&sig=s4sSignature "
        "https://hooks.slack.com/services/T000/B000/hookSecret "
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=acctKeyValue;"
    )
    log.append(
        "k",
        AuditEntry(
            incident_id=None,
            actor="a",
            action="note",
            outcome="y",
            details={
                "webhook": {"token": "s3cret", "url_secret": "x", "client_secret": "cs"},
                "connection_string": "cstr",
                "text": pasted,
            },
        ),
    )
    stored = json.dumps(log.records())
    for secret in ("s3cret", 'cs"', "cstr", "eyJhbGci", "s4sSignature", "hookSecret"):
        assert secret not in stored, secret
    assert "acctKeyValue" not in stored
    assert "https://acct.blob.core.windows.net/c/x" in stored, "what is not secret stays"


def test_a_value_the_process_knows_is_secret_is_scrubbed_whoever_registered_it(tmp_path):
    """The logs and the trail share one list of known secrets (models/redaction.py):
    a token registered for the logs never lands in the trail either."""
    token = f"intake-{secrets.token_hex(12)}"
    telemetry.register_secrets([token])
    log = SqliteAuditLog(tmp_path / "audit.db")
    log.append(
        "k",
        AuditEntry(incident_id=None, actor="a", action="note", outcome=f"pasted {token}"),
    )
    (row,) = log.records()
    assert token not in json.dumps(row) and row["record"]["outcome"] == "pasted [redacted]"


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "audit", *args],
        capture_output=True,
        text=True,
        env={"STANCH_STATE_DIR": str(tmp_path), "PATH": "", **env},
    )


def test_cli_verify_and_export(tmp_path):
    log = filled(tmp_path, 3)
    ok = run_cli(tmp_path, "verify", "--no-temporal")
    assert ok.returncode == 0 and "3 records, chain intact" in ok.stdout
    assert "signed checkpoints" in ok.stdout
    exported = run_cli(tmp_path, "export", "--since", "2000-01-01")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["record"]["action"] for line in lines] == ["step 1", "step 2", "step 3"]
    assert run_cli(tmp_path, "export", "--since", "2999-01-01").stdout == ""
    assert run_cli(tmp_path, "export", "--since", "yesterday").returncode == 2
    tamper(log, "DELETE FROM audit WHERE seq = 2")
    broken = run_cli(tmp_path, "verify", "--no-temporal")
    assert broken.returncode == 1
    assert "first bad record: 2 (removed)" in broken.stdout


def test_cli_verify_without_the_key_is_refused(tmp_path):
    filled(tmp_path, 2)
    (tmp_path / "audit.key").unlink()
    refused = run_cli(tmp_path, "verify", "--no-temporal")
    assert refused.returncode == 2 and "no audit key" in refused.stderr
    short = run_cli(tmp_path, "verify", "--no-temporal", STANCH_AUDIT_KEY="short")
    assert short.returncode == 2 and "STANCH_AUDIT_KEY" in short.stderr
    wrong = run_cli(tmp_path, "verify", "--no-temporal", STANCH_AUDIT_KEY="w" * 40)
    assert wrong.returncode == 1 and "first bad record: 1 (other key)" in wrong.stdout


def test_a_key_from_the_settings_never_lands_beside_the_database(tmp_path):
    secret = "k" * 48
    settings = Settings(state_dir=tmp_path, audit_key=SecretStr(secret))
    log = SqliteAuditLog.from_settings(settings)
    log.append("a", entry(1))
    assert not (tmp_path / "audit.key").exists()
    assert log.verify() == []
    ok = run_cli(tmp_path, "verify", "--no-temporal", STANCH_AUDIT_KEY=secret)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with pytest.raises(AuditKeyError, match="at least 32"):
        SqliteAuditLog.from_settings(Settings(state_dir=tmp_path, audit_key=SecretStr("short")))


def test_a_lost_key_is_an_error_not_a_new_key(tmp_path):
    filled(tmp_path, 2)
    (tmp_path / "audit.key").unlink()
    with pytest.raises(AuditKeyError, match=r"audit\.key is missing"):
        SqliteAuditLog(tmp_path / "audit.db")
    assert not (tmp_path / "audit.key").exists()


def test_a_trail_written_before_the_key_is_upgraded_in_place(tmp_path):
    """Its records keep verifying by the old rule, up to the first keyed one."""
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL,"
            " record TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        previous = GENESIS
        for n in (1, 2, 3):
            record = {**entry(n).model_dump(mode="json"), "at": "2026-01-01T00:00:00+00:00"}
            digest = unkeyed_hash(previous, record)
            db.execute(
                "INSERT INTO audit (key, record, prev_hash, hash) VALUES (?, ?, ?, ?)",
                (f"old{n}", canonical(record), previous, digest),
            )
            previous = digest
    before = run_cli(tmp_path, "verify", "--no-temporal")
    assert before.returncode == 0 and "unkeyed" in before.stdout

    log = SqliteAuditLog(path)
    log.append_many([("new1", entry(4)), ("new2", entry(5))])
    assert [r["version"] for r in log.records()] == [0, 0, 0, 1, 1]
    assert log.records()[3]["prev_hash"] == previous, "one chain across the upgrade"
    assert log.verify() == []
    assert checkpoints(tmp_path)[0]["keyed_from"] == 4
    after = run_cli(tmp_path, "verify", "--no-temporal")
    assert after.returncode == 0 and "the first 3 records" in after.stdout

    record = {**log.records()[1]["record"], "actor": "mallory"}
    tamper(log, "UPDATE audit SET record = ? WHERE seq = 2", canonical(record))
    assert log.verify() == ["record 2: edited: its content no longer matches its MAC"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_trail_and_its_key_are_private(tmp_path):
    filled(tmp_path, 1)
    for name in ("audit.db", "audit.key", "audit.checkpoints"):
        assert mode(tmp_path / name) == 0o600, name
    older = tmp_path / "older"
    older.mkdir()
    (older / "audit.db").touch(mode=0o644)
    os.chmod(older / "audit.db", 0o644)
    SqliteAuditLog(older / "audit.db")
    assert mode(older / "audit.db") == 0o600, "a trail made before is tightened"


def test_checkpoints_every_n_appends(tmp_path):
    log = filled(tmp_path, 7, checkpoint_every=3, checkpoint_seconds=3600)
    # At start (the empty trail), the process's first append, then every 3 records.
    assert [c["seq"] for c in checkpoints(tmp_path)] == [0, 1, 4, 7]
    log.checkpoint()  # nothing new: no line
    assert len(checkpoints(tmp_path)) == 4


def test_an_append_is_anchored_within_t_seconds(tmp_path):
    log = filled(tmp_path, 2, checkpoint_every=1000, checkpoint_seconds=0.2)
    assert checkpoints(tmp_path)[-1]["seq"] == 1
    deadline = time.monotonic() + 10
    while checkpoints(tmp_path)[-1]["seq"] != 2:
        assert time.monotonic() < deadline, "the timer never anchored record 2"
        time.sleep(0.05)
    assert log.verify() == []


def test_writers_in_two_processes_keep_one_chain(tmp_path):
    """The gateway (group commits) and a worker (one append per activity) at once."""
    gateway = SqliteAuditLog(tmp_path / "audit.db", checkpoint_every=7)
    worker = SqliteAuditLog(tmp_path / "audit.db", checkpoint_every=5)

    def alerts() -> None:
        for batch in range(20):
            gateway.append_many([(f"alert/{batch}/{i}", entry(i)) for i in range(10)])

    def steps() -> None:
        for i in range(100):
            worker.append(f"wf/run/{i}", entry(i))
            worker.append(f"wf/run/{i}", entry(i))  # a retried activity

    threads = [threading.Thread(target=alerts), threading.Thread(target=steps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = gateway.records()
    assert len(records) == 300 and len({r["key"] for r in records}) == 300
    assert gateway.verify() == [] and worker.verify() == []


@pytest.mark.parametrize("count", [1, 50])
def test_chain_of_any_length(tmp_path, count):
    assert filled(tmp_path, count).verify() == []


def test_a_writer_with_another_key_is_refused_before_it_writes(tmp_path):
    """A gateway and a worker given different keys would fork the chain."""
    log = filled(tmp_path, 2)
    before = (log.records(), (tmp_path / "audit.checkpoints").read_text())
    settings = Settings(state_dir=tmp_path, audit_key=SecretStr("x" * 40))
    with pytest.raises(AuditKeyError, match="every writer needs the same key"):
        SqliteAuditLog.from_settings(settings)
    assert (log.records(), (tmp_path / "audit.checkpoints").read_text()) == before
    assert log.verify() == []
