"""One audit chain in PostgreSQL however many processes append to it
(stores/postgres/audit.py): two real processes appending at once, single
records and group commits, some with the same keys, leave one valid chain
that `stanch audit verify` passes; an edit made in the database is named."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from stanch.models.audit import AuditEntry
from stanch.stores.audit.key import AuditKeyError
from stanch.stores.select import audit_log
from tests.support.postgres import (
    database_env,
    database_settings,
    python_process,
    query,
    run_stanch,
)

SINGLES, BATCHES, BATCH, SHARED = 120, 30, 5, 25

# Another worker or gateway: waits for "go" so both append at the same time,
# then prints each receipt as `key seq hash`.
WRITER = f"""
import sys
from stanch.models.audit import AuditEntry
from stanch.models.settings import Settings
from stanch.stores.select import audit_log

name = sys.argv[1] if len(sys.argv) > 1 else "{{name}}"
log = audit_log(Settings())
def entry(i):
    return AuditEntry(incident_id=f"inc-{{i % 7}}", actor=name, action="page", outcome="sent")
print("ready", flush=True)
sys.stdin.readline()
out = []
for i in range({SINGLES}):
    out.append((f"{{name}}/single/{{i}}", log.append(f"{{name}}/single/{{i}}", entry(i))))
    if i < {SHARED}:  # both processes record the same fact: it is kept once
        out.append((f"shared/{{i}}", log.append(f"shared/{{i}}", entry(i))))
for b in range({BATCHES}):
    keys = [f"{{name}}/batch/{{b}}/{{j}}" for j in range({BATCH})]
    out += zip(keys, log.append_many([(k, entry(b)) for k in keys]))
for key, receipt in out:
    print(key, receipt.seq, receipt.hash)
"""


def start_writer(name: str, env: dict[str, str]):
    process = python_process(WRITER.replace("{name}", name), env)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", process.stderr and process.stderr.read()
    return process


def test_two_processes_append_one_valid_chain(database_url: str, tmp_path: Path):
    env = database_env(database_url, tmp_path, audit_checkpoint_every=50)
    writers = [start_writer(name, env) for name in ("worker-a", "gateway-b")]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    receipts: dict[str, tuple[int, str]] = {}
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        for line in out.splitlines():
            key, seq, digest = line.split()
            # A shared key has one receipt, whoever asked for it.
            assert receipts.setdefault(key, (int(seq), digest)) == (int(seq), digest), key
    unique = 2 * (SINGLES + BATCHES * BATCH) + SHARED
    assert len(receipts) == unique

    rows = query(database_url, "SELECT seq, key, hash, prev_hash FROM audit_records ORDER BY seq")
    assert [seq for seq, *_ in rows] == list(range(1, unique + 1)), "one sequence, no gaps"
    assert {key: (seq, digest) for seq, key, digest, _ in rows} == receipts
    assert all(prev == rows[i - 1][2] for i, (_, _, _, prev) in enumerate(rows) if i), "one chain"
    writers_seen = {
        json.loads(r)["actor"] for (r,) in query(database_url, "SELECT record FROM audit_records")
    }
    assert writers_seen == {"worker-a", "gateway-b"}
    interleaved = [key.split("/")[0] for _, key, _, _ in rows if not key.startswith("shared/")]
    switches = sum(a != b for a, b in itertools.pairwise(interleaved))
    print(f"writers alternated {switches} times in {unique} records")

    verified = run_stanch(env, "audit", "verify", "--no-temporal")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{unique} records, chain intact" in verified.stdout
    assert "signed checkpoints (postgresql" in verified.stdout

    exported = run_stanch(env, "audit", "export")
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == unique


def test_an_edit_and_a_cut_in_the_database_are_named(database_url: str, tmp_path: Path):
    env = database_env(database_url, tmp_path, audit_checkpoint_every=1)
    log = audit_log(database_settings(database_url, tmp_path, audit_checkpoint_every=1))
    for i in range(6):
        log.append(
            f"step/{i}",
            AuditEntry(incident_id="inc-1", actor="alice", action="ack", outcome="done"),
        )
    assert run_stanch(env, "audit", "verify", "--no-temporal").returncode == 0

    query(
        database_url,
        "UPDATE audit_records SET record = replace(record, 'alice', 'mallory') WHERE seq = 3",
    )
    edited = run_stanch(env, "audit", "verify", "--no-temporal")
    assert edited.returncode == 1, edited.stdout
    assert "first bad record: 3 (edited)" in edited.stdout

    query(
        database_url,
        "UPDATE audit_records SET record = replace(record, 'mallory', 'alice') WHERE seq = 3",
    )
    query(database_url, "DELETE FROM audit_records WHERE seq = 6")
    cut = run_stanch(env, "audit", "verify", "--no-temporal")
    assert cut.returncode == 1, cut.stdout
    assert "truncated" in cut.stdout


def test_a_writer_with_another_key_is_refused_before_writing(database_url: str, tmp_path: Path):
    log = audit_log(database_settings(database_url, tmp_path))
    log.append(
        "first",
        AuditEntry(incident_id=None, actor="gateway", action="alert received", outcome="Fired"),
    )
    keyless = database_settings(database_url, tmp_path / "new-host")
    keyless.audit_key = None  # a new key of its own would fork the chain
    with pytest.raises(AuditKeyError, match="this host has no audit key"):
        audit_log(keyless)
    other = database_settings(database_url, tmp_path / "other-host")
    other.audit_key = SecretStr("another-key-" + "0123456789abcdef" * 3)
    with pytest.raises(AuditKeyError, match="every writer of the fleet needs the same key"):
        audit_log(other)
    assert query(database_url, "SELECT key FROM audit_records") == [("first",)]
