"""Page idempotency for a fleet: a page is delivered to a file sink once per
key, whichever worker's retry delivers it.

The file sink's own index (stores/page_file.py) knows only what one host's
file holds; a page retried on another worker would be written again there.
Here the key is claimed in `page_records` and the line appended to the file
in one transaction: a claim that conflicts means another process paged it,
and a file that cannot be written rolls the claim back, so the retry pages.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from stanch.stores.page_file import PageFile
from stanch.stores.postgres.database import Database


class PostgresPageFile(PageFile):
    def __init__(self, db: Database, path: Path) -> None:
        super().__init__(path)
        self.db = db
        self.sink = str(path)

    def append_once(self, key: str, record: dict[str, Any]) -> bool:
        """Appends `record` under `key` unless any process has; True if written.
        Raises OSError (the activity retries) when the database cannot be reached."""
        try:
            return self.db.run(self._append_once(key, record))
        except Exception as e:
            if isinstance(e, OSError):
                raise
            raise OSError(errno.EIO, f"page records in {self.db.where}: {e}") from None

    async def _append_once(self, key: str, record: dict[str, Any]) -> bool:
        async with self.db.pool.connection() as conn, conn.transaction():
            claimed = await (
                await conn.execute(
                    "INSERT INTO page_records (sink, key, record) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (self.sink, key, Jsonb(json.loads(json.dumps(record, default=str)))),
                )
            ).fetchone()
            if claimed is None:
                return False
            # This host's file (its own index skips a key it already holds).
            super().append_once(key, record)
            return True


async def paged_keys(db: Database, sink: Path) -> list[str]:
    """The keys the fleet has paged to `sink`, oldest first (tests, drills)."""
    async with db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT key FROM page_records WHERE sink = %s ORDER BY paged_at, key", (str(sink),)
        )
        return [str(key) for (key,) in await cursor.fetchall()]
