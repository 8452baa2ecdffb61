"""The audit chain in PostgreSQL: one chain however many workers and gateways
append to it, on however many hosts.

The chain rule, the key, the checkpoints' MAC and the naming of tampering are
the SQLite trail's (stores/audit/); only where rows and checkpoints live
changes. Appends are serialised by a transaction-scoped advisory lock: a
writer takes it, reads the head, inserts its records after it and commits, so
sequence numbers have no gaps and each record links to the one before it. A
batch (the gateway's group commit of an alert storm) is one transaction.

Checkpoints are rows of `audit_checkpoints`, written in the same transaction as
the records they vouch for. They share the database with the records, so they
stop a writer without the key, not an owner of the database: the receipts in
workflow histories, cross-checked by `stanch audit verify`, are the anchor
outside it.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from stanch.models.audit import AuditEntry, AuditReceipt
from stanch.stores.audit.anchoring import CheckpointTimer, anchor_on_exit
from stanch.stores.audit.chain import GENESIS, KEYED, AuditRow, seal
from stanch.stores.audit.checkpoints import Checkpoint, checkpoint_mac
from stanch.stores.audit.key import AuditKeyError, create_audit_key, key_id, load_audit_key
from stanch.stores.audit.scrub import scrub
from stanch.stores.audit.tampering import Anchor, Finding
from stanch.stores.audit.trail import judge_trail
from stanch.stores.postgres.database import Database

log = logging.getLogger("stanch.audit")
_CHAIN_LOCK = 0x5354414E4302  # "STANC" 2: the chain's one writer at a time
CHECKPOINTS = "table audit_checkpoints"


class PostgresAuditLog:
    def __init__(
        self,
        db: Database,
        secret: bytes | None = None,
        *,
        key_file: Path,
        checkpoint_every: int = 100,
        checkpoint_seconds: float = 10.0,
    ) -> None:
        self.db = db
        self.key_file = key_file
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._timer = CheckpointTimer(db.where)
        found = db.run(_checkpoints(db, None))
        keyed = db.run(_first_keyed(db))
        self._secret = secret or self._own_key(has_keyed=keyed is not None)
        signed = [c for c in db.run(_checkpoints(db, self._secret)) if c.signed]
        if found and not signed:
            # Another key would fork the chain: every record it wrote would look forged.
            raise AuditKeyError(
                f"the audit checkpoints in {db.where} were signed with audit key "
                f"{', '.join(sorted({c.key_id for c in found}))}, not with this one "
                f"({key_id(self._secret)}): every writer of the fleet needs the same key "
                "(STANCH_AUDIT_KEY or STANCH_AUDIT_KEY_FILE)"
            )
        # Where the keyed chain begins is what the first checkpoint said.
        self.keyed_from = signed[0].keyed_from if signed else (keyed or 1)
        if not found:
            db.run(self._first_anchor())
        self._unanchored = False
        anchor_on_exit(self)

    def _own_key(self, has_keyed: bool) -> bytes:
        key = load_audit_key(None, self.key_file)
        if key is not None:
            return key
        if has_keyed:
            raise AuditKeyError(
                f"{self.db.where} holds keyed audit records but this host has no audit key: "
                f"set STANCH_AUDIT_KEY (or STANCH_AUDIT_KEY_FILE, default {self.key_file}) "
                "to the fleet's key; a new key would make every record look forged"
            )
        return create_audit_key(self.key_file)

    async def _first_anchor(self) -> None:
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CHAIN_LOCK,))
            if await (await conn.execute("SELECT 1 FROM audit_checkpoints LIMIT 1")).fetchone():
                return  # another writer anchored first
            seq, head = await _head(conn)
            await self._insert_checkpoint(conn, seq, head)

    def append(self, key: str, entry: AuditEntry) -> AuditReceipt:
        return self.append_many([(key, entry)])[0]

    def append_many(self, entries: Sequence[tuple[str, AuditEntry]]) -> list[AuditReceipt]:
        """Appends in order, in one transaction; a key already recorded (by
        any process, or earlier in the batch) keeps its first record and receipt."""
        records = [(key, scrub(entry.model_dump(mode="json"))) for key, entry in entries]
        receipts: list[AuditReceipt] = self.db.run(self._append(records))
        return receipts

    async def _append(self, records: list[tuple[str, dict[str, Any]]]) -> list[AuditReceipt]:
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CHAIN_LOCK,))
            cursor = await conn.execute(
                "SELECT key, seq, hash FROM audit_records WHERE key = ANY(%s)",
                ([key for key, _ in records],),
            )
            known = {
                key: AuditReceipt(seq=seq, hash=digest)
                for key, seq, digest in await cursor.fetchall()
            }
            seq, previous = await _head(conn)
            receipts: list[AuditReceipt] = []
            rows: list[tuple[int, str, str, str, str, int]] = []
            for key, record in records:
                if key in known:
                    receipts.append(known[key])
                    continue
                digest, text = seal(self._secret, previous, key, record)
                seq += 1
                rows.append((seq, key, text, previous, digest, KEYED))
                previous = digest
                known[key] = AuditReceipt(seq=seq, hash=digest)
                receipts.append(known[key])
            if rows:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO audit_records (seq, key, record, prev_hash, hash, version)"
                        " VALUES (%s, %s, %s, %s, %s, %s)",
                        rows,
                    )
                await self._maybe_anchor(conn, seq, previous)
            return receipts

    async def _maybe_anchor(self, conn: psycopg.AsyncConnection[Any], seq: int, head: str) -> None:
        """Every N records (fleet-wide) or T seconds (per process); records
        left unanchored are anchored by a timer within T seconds."""
        last = await (
            await conn.execute("SELECT seq, at FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        ).fetchone()
        anchored_seq = int(last[0]) if last else 0
        anchored_at = datetime.fromisoformat(last[1]).timestamp() if last else 0.0
        if seq - anchored_seq >= self._every or time.time() - anchored_at >= self._seconds:
            await self._insert_checkpoint(conn, seq, head)
            self._unanchored = False
            return
        self._unanchored = True
        self._timer.arm(self._seconds, self.checkpoint)

    async def _insert_checkpoint(
        self, conn: psycopg.AsyncConnection[Any], seq: int, head: str
    ) -> None:
        at = datetime.now(UTC).isoformat()
        await conn.execute(
            "INSERT INTO audit_checkpoints (seq, hash, keyed_from, at, key_id, mac)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                seq,
                head,
                self.keyed_from,
                at,
                key_id(self._secret),
                checkpoint_mac(self._secret, seq, head, self.keyed_from, at),
            ),
        )
        log.info("audit checkpoint: %d records, head %s", seq, head)

    def checkpoint(self) -> None:
        """Anchor the head now, if this process appended since it last anchored."""
        if self._unanchored and not self.db.closed:
            self.db.run(self._checkpoint_now())

    async def _checkpoint_now(self) -> None:
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CHAIN_LOCK,))
            seq, head = await _head(conn)
            last = await (await conn.execute("SELECT max(seq) FROM audit_checkpoints")).fetchone()
            if seq > int((last and last[0]) or 0):
                await self._insert_checkpoint(conn, seq, head)
        self._unanchored = False

    def verify(self) -> list[str]:
        """Every problem, the first bad record first; empty when the trail is sound."""
        return [str(f) for f in verify_database(self.db, self._secret)]

    def records(self) -> list[dict[str, Any]]:
        return [row.as_dict() for row in self.db.run(read_rows(self.db))]


def verify_database(
    db: Database, secret: bytes | None, receipts: Sequence[Anchor] = ()
) -> list[Finding]:
    """`stanch audit verify` over the database: the chain, its checkpoints, any receipts."""
    rows = db.run(read_rows(db))
    found = db.run(_checkpoints(db, secret))
    return judge_trail(rows, found, [], secret, f"{db.where} {CHECKPOINTS}", receipts)


def signed_checkpoints(db: Database, secret: bytes | None) -> int:
    return sum(c.signed for c in db.run(_checkpoints(db, secret)))


async def read_rows(db: Database) -> list[AuditRow]:
    async with db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT seq, key, record, prev_hash, hash, version FROM audit_records ORDER BY seq"
        )
        return [
            AuditRow(s, k, json.loads(r), p, h, v) for s, k, r, p, h, v in await cursor.fetchall()
        ]


async def _checkpoints(db: Database, secret: bytes | None) -> list[Checkpoint]:
    async with db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id, seq, hash, keyed_from, at, key_id, mac FROM audit_checkpoints ORDER BY id"
        )
        return [
            Checkpoint(
                int(number),
                int(seq),
                head,
                int(keyed_from),
                at,
                kid,
                secret is not None
                and hmac.compare_digest(mac, checkpoint_mac(secret, seq, head, keyed_from, at)),
            )
            for number, seq, head, keyed_from, at, kid, mac in await cursor.fetchall()
        ]


async def _first_keyed(db: Database) -> int | None:
    async with db.pool.connection() as conn:
        row = await (
            await conn.execute("SELECT min(seq) FROM audit_records WHERE version = %s", (KEYED,))
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None


async def _head(conn: psycopg.AsyncConnection[Any]) -> tuple[int, str]:
    row = await (
        await conn.execute("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1")
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)
