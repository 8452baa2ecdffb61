"""Which store keeps each shared fact, chosen from settings in this one place.

No STANCH_DATABASE_URL: the embedded default, files and SQLite under the state
dir (`stanch dev`, one machine). With it: PostgreSQL (stores/postgres/), so
every worker and gateway of a fleet, on any host, shares one audit chain, one
kill switch and log level, one set of page records and postmortem drafts. A
process needs nothing but the URL (and the fleet's audit key) to join.

What is not here, and why: evidence has its own setting (STANCH_EVIDENCE_URL);
spent decision nonces live in the workflows' state, which Temporal already
shares; the gateway's alert coalescer batches one process's in-flight calls
and holds nothing another process needs.

One database (one pool, one LISTEN connection) per process and URL; the first
use checks the schema, so a process refuses to run on a schema it does not know.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

from stanch.models.redaction import register_secrets
from stanch.models.settings import Settings
from stanch.stores.audit import SqliteAuditLog, load_audit_key
from stanch.stores.audit.chain import AuditRow
from stanch.stores.audit.checkpoints import CheckpointFile
from stanch.stores.audit.tampering import Anchor, Finding
from stanch.stores.audit.trail import read_rows, verify_trail
from stanch.stores.page_file import PageFile
from stanch.stores.postmortem import PostmortemFolder
from stanch.stores.subscriptions import SqliteSubscriptions
from stanch.stores.toggles import ToggleStore

if TYPE_CHECKING:
    from stanch.stores.postgres.audit import PostgresAuditLog
    from stanch.stores.postgres.database import Database
    from stanch.stores.postgres.subscriptions import PostgresSubscriptions

# What the gateway and the worker append to, whichever store it is.
AuditTrail: TypeAlias = "SqliteAuditLog | PostgresAuditLog"

_databases: dict[str, Database] = {}
_toggles: dict[Database, ToggleStore] = {}
_opening = threading.Lock()

# How often a process re-reads the log level: the file store is polled; the
# database's snapshot follows NOTIFY, so reading it often costs nothing.
FILE_FOLLOW_SECONDS = 5.0
DATABASE_FOLLOW_SECONDS = 0.25


def database(settings: Settings) -> Database | None:
    """The shared database, opened (and its schema checked) on first use; None
    without STANCH_DATABASE_URL. Raises DatabaseUrlError, DatabaseUnavailable
    or SchemaMismatch (stores/postgres/)."""
    if settings.database_url is None:
        return None
    from stanch.stores.postgres.database import Database
    from stanch.stores.postgres.migrations import check_schema

    url = settings.database_url.get_secret_value()
    with _opening:
        db = _databases.get(url)
        if db is None or db.closed:
            db = Database(url)
            register_secrets([db.password])  # libpq may quote it back in an error
            try:
                check_schema(db)
            except BaseException:
                db.close()
                raise
            _databases[url] = db
        return db


def check_database(settings: Settings) -> int | None:
    """At a worker's or gateway's start: the schema version it will run on
    (None: no database configured). Raises as `database` does."""
    from stanch.stores.postgres.migrations import current_version

    db = database(settings)
    return None if db is None else db.run(current_version(db))


def audit_log(settings: Settings) -> AuditTrail:
    """The trail every writer of one deployment appends to."""
    db = database(settings)
    if db is None:
        return SqliteAuditLog.from_settings(settings)
    from stanch.stores.postgres.audit import PostgresAuditLog

    secret = settings.audit_key.get_secret_value() if settings.audit_key else None
    key_file = settings.audit_key_file or settings.audit_path.parent / "audit.key"
    return PostgresAuditLog(
        db,
        load_audit_key(secret, key_file) if secret else None,
        key_file=key_file,
        checkpoint_every=settings.audit_checkpoint_every,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
    )


def toggle_store(settings: Settings) -> ToggleStore:
    """The kill switch and log level (one per process and database: one LISTEN)."""
    db = database(settings)
    if db is None:
        return ToggleStore(settings.toggles_path)
    from stanch.stores.postgres.toggles import PostgresToggleStore

    with _opening:
        store = _toggles.get(db)
        if store is None:
            store = _toggles[db] = PostgresToggleStore(db)
        return store


def log_level_follow_seconds(settings: Settings) -> float:
    return FILE_FOLLOW_SECONDS if settings.database_url is None else DATABASE_FOLLOW_SECONDS


def page_files(settings: Settings) -> Callable[[Path], PageFile]:
    """What a file sink's pages are appended through, by the sink's path."""
    db = database(settings)
    if db is None:
        return PageFile
    from stanch.stores.postgres.pages import PostgresPageFile

    return lambda path: PostgresPageFile(db, path)


def subscriptions(settings: Settings) -> SqliteSubscriptions | PostgresSubscriptions:
    """Stakeholders' subscriptions and the record of updates delivered to them."""
    db = database(settings)
    if db is None:
        return SqliteSubscriptions(settings.state_dir / "subscriptions.db")
    from stanch.stores.postgres.subscriptions import PostgresSubscriptions

    return PostgresSubscriptions(db)


def postmortems(settings: Settings) -> PostmortemFolder:
    db = database(settings)
    if db is None:
        return PostmortemFolder(settings.postmortem_path)
    from stanch.stores.postgres.postmortems import PostgresPostmortems

    return PostgresPostmortems(db)


class AuditSource(Protocol):
    """The trail as the auditor reads it (`stanch audit verify | export`)."""

    label: str  # where the records are, to print
    checkpoints_label: str

    def rows(self) -> list[AuditRow]: ...
    def findings(self, secret: bytes | None, receipts: Sequence[Anchor]) -> list[Finding]: ...
    def signed_checkpoints(self, secret: bytes | None) -> int: ...


class _FileAuditSource:
    def __init__(self, settings: Settings) -> None:
        self.path = settings.audit_path
        self.checkpoints = settings.audit_checkpoints or self.path.parent / "audit.checkpoints"
        self.label, self.checkpoints_label = str(self.path), str(self.checkpoints)

    def rows(self) -> list[AuditRow]:
        return read_rows(self.path)

    def findings(self, secret: bytes | None, receipts: Sequence[Anchor]) -> list[Finding]:
        return verify_trail(self.path, secret, self.checkpoints, receipts)

    def signed_checkpoints(self, secret: bytes | None) -> int:
        return sum(c.signed for c in CheckpointFile(self.checkpoints, secret).read()[0])


class _DatabaseAuditSource:
    def __init__(self, db: Database) -> None:
        from stanch.stores.postgres.audit import CHECKPOINTS

        self.db = db
        self.label, self.checkpoints_label = db.where, f"{db.where} {CHECKPOINTS}"

    def rows(self) -> list[AuditRow]:
        from stanch.stores.postgres.audit import read_rows as read_database_rows

        return self.db.run(read_database_rows(self.db))

    def findings(self, secret: bytes | None, receipts: Sequence[Anchor]) -> list[Finding]:
        from stanch.stores.postgres.audit import verify_database

        return verify_database(self.db, secret, receipts)

    def signed_checkpoints(self, secret: bytes | None) -> int:
        from stanch.stores.postgres.audit import signed_checkpoints

        return signed_checkpoints(self.db, secret)


def audit_source(settings: Settings) -> AuditSource:
    db = database(settings)
    return _FileAuditSource(settings) if db is None else _DatabaseAuditSource(db)


def close_databases() -> None:
    """Closes every database this process opened (tests, a process that stops)."""
    with _opening:
        for store in _toggles.values():
            close = getattr(store, "close", None)
            if close is not None:
                close()
        for db in _databases.values():
            db.close()
        _toggles.clear()
        _databases.clear()
