"""The audit trail: append-only and hash-chained, so an edited, removed or
reordered record is detectable (each record's hash covers the one before).

SQLite by default, behind `AuditLog`, which a production store (e.g. Azure
immutable blob storage or a ledger table) can implement. Appends are idempotent
on a key that is stable across activity retries, so a retried activity records
its fact once.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity

from models.runbook import AuditEntry, AuditReceipt

GENESIS = "0" * 64
_SECRETISH = re.compile(r"secret|token|password|passwd|api[_-]?key|authorization|sig$", re.I)


def scrub(value: Any) -> Any:
    """Belt and braces: nothing that looks like a credential is ever recorded."""
    if isinstance(value, dict):
        return {k: "***" if _SECRETISH.search(str(k)) else scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


def chain_hash(previous: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((previous + canonical(record)).encode()).hexdigest()


class AuditLog(Protocol):
    def append(self, key: str, entry: AuditEntry) -> AuditReceipt: ...


class SqliteAuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS audit ("
                " seq INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, record TEXT NOT NULL,"
                " prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def append(self, key: str, entry: AuditEntry) -> AuditReceipt:
        return self.append_many([(key, entry)])[0]

    def append_many(self, entries: Sequence[tuple[str, AuditEntry]]) -> list[AuditReceipt]:
        """Appends in order, in one transaction: one disk sync for a whole batch
        (the gateway records an alert storm this way). A key already recorded,
        earlier or in the same batch, keeps its first record."""
        records = [(key, scrub(entry.model_dump(mode="json"))) for key, entry in entries]
        receipts: list[AuditReceipt] = []
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain is a sequence
            try:
                last = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                previous = last[0] if last else GENESIS
                for key, record in records:
                    existing = db.execute(
                        "SELECT seq, hash FROM audit WHERE key = ?", (key,)
                    ).fetchone()
                    if existing:
                        receipts.append(AuditReceipt(seq=existing[0], hash=existing[1]))
                        continue
                    record["at"] = record.get("at") or datetime.now(UTC).isoformat()
                    digest = chain_hash(previous, record)
                    cursor = db.execute(
                        "INSERT INTO audit (key, record, prev_hash, hash) VALUES (?, ?, ?, ?)",
                        (key, canonical(record), previous, digest),
                    )
                    receipts.append(AuditReceipt(seq=int(cursor.lastrowid or 0), hash=digest))
                    previous = digest
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return receipts

    def verify(self) -> list[str]:
        return verify_chain(self.records())

    def records(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT seq, key, record, prev_hash, hash FROM audit ORDER BY seq")
            return [
                {"seq": s, "key": k, "record": json.loads(r), "prev_hash": p, "hash": h}
                for s, k, r, p, h in rows
            ]


def verify_chain(rows: list[dict[str, Any]]) -> list[str]:
    """Every problem with the chain, each naming the records: edited (content no
    longer matches its hash), removed (a gap in the sequence, or a broken link)
    or reordered (the chain runs in another order than the sequence)."""
    problems: list[str] = []
    for row in rows:
        if chain_hash(row["prev_hash"], row["record"]) != row["hash"]:
            problems.append(
                f"record {row['seq']} was edited: its content no longer matches its hash"
            )
    seqs = [row["seq"] for row in rows]
    expected = 1
    for seq in sorted(seqs):
        if seq > expected:
            span = str(expected) if seq == expected + 1 else f"{expected}-{seq - 1}"
            problems.append(f"record(s) {span} removed (the sequence jumps to {seq})")
        expected = seq + 1
    # Follow the links from the start: the order records were really written in.
    after = {row["prev_hash"]: row for row in rows}
    walk: list[int] = []
    link = GENESIS
    while link in after and len(walk) < len(rows):
        walk.append(after[link]["seq"])
        link = after[link]["hash"]
    if len(walk) < len(rows):
        last = f"after record {walk[-1]}" if walk else "at the first record"
        problems.append(f"the chain breaks {last}: a record there was removed or rewritten")
    elif walk != sorted(seqs):
        moved = [w for w, s in zip(walk, sorted(seqs), strict=True) if w != s]
        chain = ", ".join(map(str, walk))
        problems.append(
            f"records {', '.join(map(str, moved))} are out of order (written as {chain})"
        )
    return problems


class AuditActivities:
    def __init__(self, log: AuditLog) -> None:
        self._log = log

    @activity.defn
    async def record_audit(self, entry: AuditEntry) -> AuditReceipt:
        """Idempotent: keyed by workflow id and activity id, which a retry keeps."""
        info = activity.info()
        key = f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
        return self._log.append(key, entry)
