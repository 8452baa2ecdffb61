"""The audit trail: append-only, keyed-hash-chained and anchored outside its
database, so a record edited, inserted, removed (from the middle or the end) or
reordered, or an edit with every later hash recomputed, is detected and named
(`stanch audit verify`; the rules in chain.py, the naming in tampering.py).

SQLite by default, behind `AuditLog`, which a production store (e.g. Azure
immutable blob storage or a ledger table) can implement. Appends are idempotent
on a key that is stable across activity retries, so a retried activity records
its fact once, and each append returns a receipt (sequence number and hash):
the workflows' receipts stay in their Temporal histories, out of reach of
whoever can write this file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from stanch.models.audit import AuditEntry, AuditReceipt
from stanch.models.settings import Settings
from stanch.stores.audit.anchoring import CheckpointTimer, anchor_on_exit
from stanch.stores.audit.chain import GENESIS, KEYED, UNKEYED, AuditRow, seal
from stanch.stores.audit.checkpoints import Checkpoint, CheckpointFile, DamagedLine
from stanch.stores.audit.key import AuditKeyError, create_audit_key, key_id, load_audit_key
from stanch.stores.audit.scrub import scrub
from stanch.stores.audit.tampering import Anchor, Finding, checkpoint_findings, find_tampering

log = logging.getLogger("stanch.audit")


class AuditLog(Protocol):
    def append(self, key: str, entry: AuditEntry) -> AuditReceipt: ...


class SqliteAuditLog:
    def __init__(
        self,
        path: Path,
        secret: bytes | None = None,
        *,
        key_file: Path | None = None,
        checkpoints: Path | None = None,
        checkpoint_every: int = 100,
        checkpoint_seconds: float = 10.0,
    ) -> None:
        self.path = path
        self.key_file = key_file or path.parent / "audit.key"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        _create_private(path)
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # gateway and worker may open it together
            try:
                keyed_from = _upgrade_schema(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._secret = secret or self._own_key(db)
            self._checkpoints = CheckpointFile(
                checkpoints or path.parent / "audit.checkpoints", self._secret
            )
            found, _ = self._checkpoints.read()
            signed = [c for c in found if c.signed]
            if found and not signed:
                # A writer with another key would fork the chain: every record it
                # wrote would look forged. Refuse before writing anything.
                raise AuditKeyError(
                    f"{self._checkpoints.path} was signed with audit key "
                    f"{', '.join(sorted({c.key_id for c in found}))}, not with this one "
                    f"({key_id(self._secret)}): every writer needs the same key "
                    f"(STANCH_AUDIT_KEY, or {self.key_file})"
                )
            last = signed[-1] if signed else None
            # Where the keyed chain begins is what the first checkpoint said, not
            # what the database says now.
            self.keyed_from = signed[0].keyed_from if signed else keyed_from
            if not self._checkpoints.exists():
                # The first anchor also fixes where the keyed chain begins, so no
                # one can later pass keyed records off as old unkeyed ones.
                seq, head = _head(db)
                if seq >= keyed_from:
                    log.error(
                        "audit checkpoints %s are missing while %s holds keyed records: "
                        "starting a new checkpoint file",
                        self._checkpoints.path,
                        path,
                    )
                self._checkpoints.write(seq, head, self.keyed_from)
        self._anchored_seq = last.seq if last else 0
        self._anchored_at = float("-inf")  # each process anchors its first append at once
        self._unanchored = False
        self._timer = CheckpointTimer(str(self._checkpoints.path))
        anchor_on_exit(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteAuditLog:
        """The trail every writer of one deployment shares: same database, key and checkpoints."""
        path = settings.audit_path
        secret = settings.audit_key.get_secret_value() if settings.audit_key else None
        key_file = settings.audit_key_file or path.parent / "audit.key"
        return cls(
            path,
            load_audit_key(secret, key_file) if secret else None,
            key_file=key_file,
            checkpoints=settings.audit_checkpoints,
            checkpoint_every=settings.audit_checkpoint_every,
            checkpoint_seconds=settings.audit_checkpoint_seconds,
        )

    def _own_key(self, db: sqlite3.Connection) -> bytes:
        key = load_audit_key(None, self.key_file)
        if key is not None:
            return key
        if db.execute("SELECT 1 FROM audit WHERE version = ? LIMIT 1", (KEYED,)).fetchone():
            raise AuditKeyError(
                f"{self.path} holds keyed records but the audit key {self.key_file} is missing: "
                "restore it (or set STANCH_AUDIT_KEY); a new key would make every record "
                "look forged"
            )
        return create_audit_key(self.key_file)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection for the store's life, used under its lock: opening and
        closing one per append cost more than the append (the last close of a
        WAL database checkpoints it)."""
        if self._db is None:
            self._db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
        yield self._db

    def append(self, key: str, entry: AuditEntry) -> AuditReceipt:
        return self.append_many([(key, entry)])[0]

    def append_many(self, entries: Sequence[tuple[str, AuditEntry]]) -> list[AuditReceipt]:
        """Appends in order, in one transaction: one disk sync for a whole batch
        (the gateway records an alert storm this way). A key already recorded,
        earlier or in the same batch, keeps its first record and receipt."""
        records = [(key, scrub(entry.model_dump(mode="json"))) for key, entry in entries]
        receipts: list[AuditReceipt] = []
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain is a sequence
            try:
                seq, previous = _head(db)
                for key, record in records:
                    existing = db.execute(
                        "SELECT seq, hash FROM audit WHERE key = ?", (key,)
                    ).fetchone()
                    if existing:
                        receipts.append(AuditReceipt(seq=existing[0], hash=existing[1]))
                        continue
                    digest, text = seal(self._secret, previous, key, record)
                    cursor = db.execute(
                        "INSERT INTO audit (key, record, prev_hash, hash, version)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (key, text, previous, digest, KEYED),
                    )
                    seq, previous = int(cursor.lastrowid or 0), digest
                    receipts.append(AuditReceipt(seq=seq, hash=digest))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._maybe_anchor(seq, previous)
        return receipts

    def _maybe_anchor(self, seq: int, head: str) -> None:
        """Every N appends or T seconds, whichever comes first; an append that
        is not anchored now is anchored within T seconds by a timer."""
        if seq <= self._anchored_seq:
            return
        wait = self._anchored_at + self._seconds - time.monotonic()
        if seq - self._anchored_seq >= self._every or wait <= 0:
            self._anchor(seq, head)
            return
        self._unanchored = True
        self._timer.arm(wait, self.checkpoint)

    def _anchor(self, seq: int, head: str) -> None:
        self._checkpoints.write(seq, head, self.keyed_from)
        self._anchored_seq, self._anchored_at = seq, time.monotonic()
        self._unanchored = False

    def checkpoint(self) -> None:
        """Anchor the head now, if this process appended since its last checkpoint."""
        if not self._unanchored or not self.path.exists():
            return
        with self._lock, self._connect() as db:
            seq, head = _head(db)
            if seq > self._anchored_seq:
                self._anchor(seq, head)

    def verify(self) -> list[str]:
        """Every problem, the first bad record first; empty when the trail is sound."""
        return [str(f) for f in verify_trail(self.path, self._secret, self._checkpoints.path)]

    def records(self) -> list[dict[str, Any]]:
        return [row.as_dict() for row in read_rows(self.path)]


def verify_trail(
    path: Path, secret: bytes | None, checkpoints: Path, receipts: Sequence[Anchor] = ()
) -> list[Finding]:
    """Checks the chain against the key, the signed checkpoints and any receipts."""
    found, damaged = CheckpointFile(checkpoints, secret).read()
    return judge_trail(read_rows(path), found, damaged, secret, str(checkpoints), receipts)


def judge_trail(
    rows: Sequence[AuditRow],
    found: Sequence[Checkpoint],
    damaged: Sequence[DamagedLine],
    secret: bytes | None,
    checkpoints: str,
    receipts: Sequence[Anchor] = (),
) -> list[Finding]:
    """The findings over rows and checkpoints wherever they are kept (this
    file's SQLite and checkpoint file, or PostgreSQL: stores/postgres/audit.py)."""
    signed = [c for c in found if c.signed]
    anchors = [Anchor(c.seq, c.hash, f"checkpoint line {c.line} ({c.at})") for c in signed]
    first_keyed = next((r.seq for r in rows if r.version == KEYED), None)
    keyed_from = next(
        (c.keyed_from for c in signed),
        first_keyed if first_keyed is not None else (rows[-1].seq + 1 if rows else 1),
    )
    findings: list[Finding] = []
    if secret is not None and found and not signed:
        others = sorted({c.key_id for c in found} - {key_id(secret)})
        if others:
            findings.append(
                Finding(
                    1,
                    "other key",
                    f"no checkpoint carries this key's MAC: they were made with key "
                    f"{', '.join(others)}, this is {key_id(secret)}. Verify with the writers' "
                    "key; if it is the writers' key, audit.key was replaced and the trail "
                    "rewritten with it",
                )
            )
    findings += find_tampering(rows, secret, keyed_from, [*anchors, *receipts])
    if secret is not None:
        findings += checkpoint_findings(found, damaged, key_id(secret))
    if first_keyed is not None and not found:
        findings.append(
            Finding(
                rows[-1].seq + 1,
                "checkpoints removed",
                f"{checkpoints} is missing or empty while the trail holds keyed records: "
                "nothing outside the database vouches for how long it was",
            )
        )
    # Findings about no record in particular (a damaged line, the empty trail's
    # checkpoint) come after those that name one.
    return sorted(findings, key=lambda f: (f.seq < 1, f.seq))


def read_rows(path: Path) -> list[AuditRow]:
    """The records as stored, without creating or upgrading anything: what the
    auditor reads. A trail written before the keyed chain reads as unkeyed."""
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=30)
    try:
        columns = {c[1] for c in db.execute("PRAGMA table_info(audit)")}
        if not columns:
            return []
        version = "version" if "version" in columns else str(UNKEYED)
        rows = db.execute(
            f"SELECT seq, key, record, prev_hash, hash, {version} FROM audit ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    return [AuditRow(s, k, json.loads(r), p, h, v) for s, k, r, p, h, v in rows]


def _upgrade_schema(db: sqlite3.Connection) -> int:
    """Creates the table, or adds the version column to a trail written before
    the keyed chain (its records keep verifying by the old rule). Returns the
    first sequence number of the keyed chain."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS audit ("
        " seq INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, record TEXT NOT NULL,"
        " prev_hash TEXT NOT NULL, hash TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0)"
    )
    columns = {c[1] for c in db.execute("PRAGMA table_info(audit)")}
    if "version" not in columns:
        db.execute("ALTER TABLE audit ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
    first_keyed = db.execute("SELECT MIN(seq) FROM audit WHERE version = ?", (KEYED,)).fetchone()
    if first_keyed[0] is not None:
        return int(first_keyed[0])
    return _head(db)[0] + 1


def _head(db: sqlite3.Connection) -> tuple[int, str]:
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


def _create_private(path: Path) -> None:
    """audit.db is 0600 from its first byte; SQLite gives its -wal and -shm files
    the database's mode. A trail made before this is tightened."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        with contextlib.suppress(OSError):
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                path.chmod(0o600)
