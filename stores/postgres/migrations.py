"""The schema's versions: `migrations/NNNN_name.sql`, applied in order by
`stanch db upgrade`, each in one transaction with its row in
`stanch_schema_version`, so a migration is applied whole or not at all and
never twice (two upgrades started together take turns on an advisory lock).

Every worker and gateway checks the version before it starts: a schema older
than this code needs, or newer than it knows (a later release migrated it),
is refused with both versions named, rather than failing on a missing column
in the middle of an incident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from stanch.stores.postgres.database import Database

_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_UPGRADE_LOCK = 0x5354414E4301  # "STANC" 1: one upgrade at a time
_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS stanch_schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration this release ships, in order."""
    folder = resources.files("stanch.stores.postgres") / "migrations"
    found = []
    for entry in folder.iterdir():
        if match := _MIGRATION.match(entry.name):
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    assert [m.version for m in found] == list(range(1, len(found) + 1)), "a migration is missing"
    return found


KNOWN = len(migrations())  # the newest schema this code knows
NEEDS = KNOWN  # the oldest schema it can run on (lower it for a backward-compatible change)


class SchemaMismatch(Exception):
    """The database's schema is not one this code runs on; the message says what to do."""


async def current_version(db: Database) -> int:
    """0 for a database never upgraded."""
    async with db.pool.connection() as conn:
        return await _version(conn)


async def _version(conn: psycopg.AsyncConnection[Any]) -> int:
    exists = await (
        await conn.execute("SELECT to_regclass('stanch_schema_version') IS NOT NULL")
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = await (
        await conn.execute("SELECT coalesce(max(version), 0) FROM stanch_schema_version")
    ).fetchone()
    return int(row[0]) if row else 0


async def upgrade(db: Database) -> tuple[int, list[Migration]]:
    """Applies what is missing; returns the version found and what was applied."""
    conn = await db.connect(autocommit=True)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_UPGRADE_LOCK,))
            await conn.execute(_VERSION_TABLE)
        before = await _version(conn)
        if before > KNOWN:
            raise SchemaMismatch(_newer(db, before))
        applied = []
        for migration in migrations()[before:]:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_UPGRADE_LOCK,))
                if await _version(conn) >= migration.version:
                    continue  # another upgrade applied it while we waited
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO stanch_schema_version (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied.append(migration)
        return before, applied
    finally:
        await conn.close()


def check_schema(db: Database) -> int:
    """The schema's version if this code runs on it; SchemaMismatch otherwise."""
    version = db.run(current_version(db))
    if version > KNOWN:
        raise SchemaMismatch(_newer(db, version))
    if version < NEEDS:
        found = "no stanch schema" if version == 0 else f"schema version {version}"
        raise SchemaMismatch(
            f"{db.where} has {found}; this stanch needs version {NEEDS} "
            f"(it knows up to {KNOWN}): run `stanch db upgrade`"
        )
    return version


def _newer(db: Database, version: int) -> str:
    return (
        f"{db.where} has schema version {version}, newer than this stanch knows "
        f"(up to {KNOWN}): a later release migrated it; upgrade this process "
        "(workers first, then gateways) rather than running old code on it"
    )
