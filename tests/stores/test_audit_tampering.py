"""Review finding #8: every kind of tampering with the audit trail is named.

One real incident runs through the real stack (gateway over HTTP, worker,
Temporal dev server, azuresim): alert, runbook with an approval, ack, notes,
resolve. Then, for each attack, a copy of its state directory is tampered
with the way someone with file access would (plain SQL on audit.db), and
`stanch audit verify` runs as a subprocess: exit 1, the first bad record and
the kind of tampering named, and verify itself changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from stanch.harness.ports import free_port
from stanch.harness.waiting import eventually
from stanch.stores.audit.chain import canonical, keyed_hash, unkeyed_hash
from stanch.testing.estate import WORLD
from tests.support.plans import API_TOKENS, REMEDIATION, policy_file
from tests.support.stack import gateway_at, stack_settings

ALERT = Path(__file__).resolve().parents[2] / "examples" / "demo" / "vm-web-1-unavailable.json"
pytestmark = pytest.mark.devserver


@dataclass(frozen=True)
class Trail:
    state_dir: Path  # audit.db, audit.key, audit.checkpoints of the real run
    temporal_address: str
    task_queue: str
    count: int
    approval: int  # the record of carol's approval: what an attacker would edit


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKENS[role]}"}


async def run_an_incident(url: str, token: str) -> None:
    """The review's run, through the real gateway: alert, approval, ack, notes, resolve."""
    body = json.loads(ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"audit-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await http.post(f"{url}/alerts", json=body, params={"token": token})
        assert opened.status_code == 202, opened.text
        base = f"{url}/api/incidents/{opened.json()['incident_id']}"

        async def pending() -> bool:
            detail = await http.get(base, headers=auth("viewer"))
            return detail.status_code == 200 and bool(detail.json()["pending_approvals"])

        await eventually(pending, 30, "the runbook's approval")
        approved = await http.post(
            f"{base}/approvals/isolate/approve", json={"comment": "go"}, headers=auth("approver")
        )
        assert approved.status_code == 200, approved.text
        ack = await http.post(f"{base}/ack", json={"note": "on it"}, headers=auth("responder"))
        assert ack.status_code == 200, ack.text
        for n in range(3):
            noted = await http.post(
                f"{base}/notes", json={"text": f"finding {n}"}, headers=auth("responder")
            )
            assert noted.status_code == 200, noted.text

        async def contained() -> bool:
            detail = (await http.get(base, headers=auth("viewer"))).json()
            return detail["state"].get("runbook_result") is not None

        await eventually(contained, 30, "the runbook to finish")
        resolved = await http.post(f"{base}/resolve", json={}, headers=auth("admin"))
        assert resolved.status_code == 200, resolved.text


@pytest.fixture(scope="module")
async def trail(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Trail]:
    from stanch.activities.azure_clients import AzureClients
    from stanch.azuresim import AzureSim, load_world
    from stanch.models.settings import Settings
    from stanch.worker import build_worker

    state = tmp_path_factory.mktemp("real-trail")
    world = load_world(WORLD)
    world.operation_seconds = 0.3
    sim = AzureSim(world, state_dir=state / "azuresim").start()
    port, token = free_port(), uuid.uuid4().hex + uuid.uuid4().hex
    config = policy_file(state, **REMEDIATION)
    settings = stack_settings(
        dev_env,
        state,
        f"tq-{uuid.uuid4()}",
        config,
        token,
        port,
        audit_checkpoint_seconds=0.5,  # so the run's tail is anchored within the test
    )
    azure = AzureClients(
        Settings(azure_endpoint=sim.url, azure_ca_file=sim.ca_file, azure_poll_seconds=0.05)
    )
    try:
        async with build_worker(dev_env.client, settings, azure), gateway_at(settings, port) as url:
            await run_an_incident(url, token)
            count = await eventually(lambda: anchored_head(state), 30, "a checkpoint of the head")
    finally:
        await azure.close()
        sim.stop()
    async for execution in dev_env.client.list_workflows(f"TaskQueue = '{settings.task_queue}'"):
        if execution.status is not None and execution.status.name == "RUNNING":
            await dev_env.client.get_workflow_handle(execution.id).terminate("test done")
    approval = next(r["seq"] for r in rows(state) if r["record"]["action"] == "approval: isolate")
    yield Trail(state, settings.temporal_address, settings.task_queue, count, approval)


async def anchored_head(state: Path) -> int | None:
    """The record count, once the last checkpoint vouches for the last record."""
    with sqlite3.connect(state / "audit.db") as db:
        (head,) = db.execute("SELECT MAX(seq) FROM audit").fetchone()
    lines = (state / "audit.checkpoints").read_text().splitlines()
    return int(head) if head and json.loads(lines[-1])["seq"] == head else None


@pytest.fixture
def copy(trail: Trail, tmp_path: Path) -> Path:
    """The real trail's files, for one attack."""
    for name in ("audit.key", "audit.checkpoints"):
        shutil.copy2(trail.state_dir / name, tmp_path / name)
    with (
        sqlite3.connect(trail.state_dir / "audit.db") as source,
        sqlite3.connect(tmp_path / "audit.db") as target,
    ):
        source.backup(target)
    return tmp_path


def verify(trail: Trail, state: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`stanch audit verify` as a subprocess; it must leave the files as they were."""
    before = fingerprint(state)
    done = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "audit", "verify", *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "STANCH_STATE_DIR": str(state),
            "STANCH_TEMPORAL_ADDRESS": trail.temporal_address,
            "STANCH_TASK_QUEUE": trail.task_queue,
            "PATH": "",
        },
    )
    assert fingerprint(state) == before, "verify changed the trail"
    return done


def fingerprint(state: Path) -> dict[str, str]:
    with sqlite3.connect(state / "audit.db") as db:
        rows = db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
    return {
        "rows": hashlib.sha256(repr(rows).encode()).hexdigest(),
        "checkpoints": (state / "audit.checkpoints").read_text(),
    }


def rows(state: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(state / "audit.db") as db:
        found = db.execute("SELECT seq, key, record, prev_hash, hash, version FROM audit")
        return [
            {"seq": s, "key": k, "record": json.loads(r), "prev": p, "hash": h, "version": v}
            for s, k, r, p, h, v in found
        ]


def sql(state: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(state / "audit.db") as db:
        db.execute(statement, args)


def edit_and_rechain(state: Path, seq: int, rehash: Callable[[dict[str, Any], str], str]) -> None:
    """Change record `seq` to say dave approved, then recompute every later hash."""
    previous = None
    for row in sorted(rows(state), key=lambda r: r["seq"]):
        if row["seq"] < seq:
            continue
        if row["seq"] == seq:
            row["record"]["actor"] = "dave"
        prev = previous or row["prev"]
        digest = rehash(row, prev)
        sql(
            state,
            "UPDATE audit SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            canonical(row["record"]),
            prev,
            digest,
            row["seq"],
        )
        previous = digest


def with_key(key: bytes) -> Callable[[dict[str, Any], str], str]:
    return lambda row, prev: keyed_hash(key, prev, row["key"], row["record"])


def assert_named(done: subprocess.CompletedProcess[str], seq: int, kind: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"first bad record: {seq} ({kind})" in done.stdout, done.stdout


def test_the_real_trail_is_sound_and_every_receipt_matches(trail: Trail, copy: Path):
    assert trail.count >= 15, "a real incident leaves a real trail"
    assert {r["version"] for r in rows(copy)} == {1}
    done = verify(trail, copy, "--temporal")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{trail.count} records, chain intact" in done.stdout
    assert "keyed with HMAC-SHA256" in done.stdout
    receipts = int(done.stdout.split(" receipts in ")[0].rsplit(" ", 1)[-1])
    # Every record but the gateway's, the policy version's and the pages' is a workflow's own.
    others = ("alert received", "configuration in use", "page")
    workflow_records = [r for r in rows(copy) if r["record"]["action"] not in others]
    assert receipts == len(workflow_records) > 5, done.stdout


def test_an_edited_record(trail: Trail, copy: Path):
    seq = trail.approval
    record = next(r for r in rows(copy) if r["seq"] == seq)["record"]
    record["actor"] = "dave"
    sql(copy, "UPDATE audit SET record = ? WHERE seq = ?", canonical(record), seq)
    assert_named(verify(trail, copy, "--no-temporal"), seq, "edited")


def test_an_edit_with_every_later_hash_recomputed_with_plain_sha256(trail: Trail, copy: Path):
    """The review's reproduction: it passed the unkeyed chain."""
    edit_and_rechain(copy, trail.approval, lambda row, prev: unkeyed_hash(prev, row["record"]))
    done = verify(trail, copy, "--no-temporal")
    assert_named(done, trail.approval, "re-chained")
    assert "with plain SHA-256" in done.stdout


def test_an_edit_with_every_later_hash_recomputed_with_a_guessed_key(trail: Trail, copy: Path):
    guesses = [b"", b"stanch", b"0" * 64, b"stanch-audit-key-guess-0123456789"]
    for n, guess in enumerate(guesses):
        target = copy / f"guess-{n}"
        target.mkdir()
        for name in ("audit.db", "audit.key", "audit.checkpoints"):
            shutil.copy2(copy / name, target / name)
        edit_and_rechain(target, trail.approval, with_key(guess))
        done = verify(trail, target, "--no-temporal")
        assert_named(done, trail.approval, "re-chained")
        assert "without the key" in done.stdout


def test_an_edit_passed_off_as_the_old_unkeyed_chain(trail: Trail, copy: Path):
    """Claiming records were written before the key does not make the old rule apply."""
    edit_and_rechain(copy, trail.approval, lambda row, prev: unkeyed_hash(prev, row["record"]))
    sql(copy, "UPDATE audit SET version = 0 WHERE seq >= ?", trail.approval)
    done = verify(trail, copy, "--no-temporal")
    assert_named(done, trail.approval, "re-chained")
    assert "old unkeyed rule" in done.stdout


def test_an_inserted_record(trail: Trail, copy: Path):
    seq = trail.approval
    by_seq = {r["seq"]: r for r in rows(copy)}
    # Make room (in two steps: seq is the primary key), then forge an approval there.
    sql(copy, "UPDATE audit SET seq = -seq - 1 WHERE seq >= ?", seq)
    sql(copy, "UPDATE audit SET seq = -seq WHERE seq < 0")
    forged = {**by_seq[seq]["record"], "actor": "dave"}
    prev = by_seq[seq - 1]["hash"]
    sql(
        copy,
        "INSERT INTO audit (seq, key, record, prev_hash, hash, version) VALUES (?, ?, ?, ?, ?, 1)",
        seq,
        "forged/approval",
        canonical(forged),
        prev,
        unkeyed_hash(prev, forged),
    )
    assert_named(verify(trail, copy, "--no-temporal"), seq, "inserted")


def test_a_record_removed_from_the_middle(trail: Trail, copy: Path):
    sql(copy, "DELETE FROM audit WHERE seq = ?", trail.approval)
    done = verify(trail, copy, "--no-temporal")
    assert_named(done, trail.approval, "removed")
    assert "removed from the middle" in done.stdout


def test_records_removed_from_the_end(trail: Trail, copy: Path):
    """The review's reproduction: deleting the last 3 rows passed the unkeyed chain."""
    sql(copy, "DELETE FROM audit WHERE seq > ?", trail.count - 3)
    done = verify(trail, copy, "--no-temporal")
    assert_named(done, trail.count - 2, "truncated")
    assert f"vouches for record {trail.count}" in done.stdout


def test_reordered_records(trail: Trail, copy: Path):
    a, b = trail.approval, trail.approval + 2
    by_seq = {r["seq"]: r for r in rows(copy)}
    for seq, source in ((a, b), (b, a)):
        r = by_seq[source]
        sql(
            copy,
            "UPDATE audit SET key = ?, record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            f"swap/{seq}",
            canonical(r["record"]),
            r["prev"],
            r["hash"],
            seq,
        )
    for seq, source in ((a, b), (b, a)):  # each record keeps its own key, which its MAC covers
        sql(copy, "UPDATE audit SET key = ? WHERE seq = ?", by_seq[source]["key"], seq)
    done = verify(trail, copy, "--no-temporal")
    assert_named(done, a, "reordered")
    assert f"records {a}, {b} are out of order" in done.stdout


def test_the_histories_catch_what_the_files_alone_cannot(trail: Trail, copy: Path):
    """An attacker holding the key and the checkpoint file too: they cut the
    trail, re-chain an edit with the real key and rewrite the checkpoints. The
    files then agree with each other; the receipts in Temporal do not."""
    from stanch.stores.audit.checkpoints import CheckpointFile

    key = (copy / "audit.key").read_text().strip().encode()
    edit_and_rechain(copy, trail.approval, with_key(key))
    sql(copy, "DELETE FROM audit WHERE seq > ?", trail.count - 3)
    (copy / "audit.checkpoints").unlink()
    head = max(rows(copy), key=lambda r: r["seq"])
    CheckpointFile(copy / "audit.checkpoints", key).write(head["seq"], head["hash"], 1)

    offline = verify(trail, copy, "--no-temporal")
    assert offline.returncode == 0, "the files alone agree: this is why the anchor is Temporal"
    done = verify(trail, copy, "--temporal")
    assert_named(done, trail.approval, "rewritten")
    assert "the history of incident-" in done.stdout or "the history of runbook-" in done.stdout
    assert "truncated" in done.stdout
