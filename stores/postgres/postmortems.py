"""Postmortem drafts in PostgreSQL: one per incident, whichever worker drafted
it, rewritten from the same facts (so a retry or a second close is harmless).
The dashboard and `stanch postmortem` render drafts from the incident itself;
this is the kept copy a fleet shares instead of one folder per host."""

from __future__ import annotations

from pathlib import Path

from stanch.stores.postgres.database import Database
from stanch.stores.postmortem import PostmortemFolder


class PostgresPostmortems(PostmortemFolder):
    def __init__(self, db: Database) -> None:
        super().__init__(Path("postmortem_drafts"))  # the table's name: no folder is written
        self.db = db

    def write(self, incident_id: str, markdown: str) -> str:
        """Keeps the draft; returns where it is (the database and the incident, no secret)."""
        self.db.run(self._write(incident_id, markdown))
        host_and_db = self.db.where.removeprefix("postgresql ")
        return f"postgresql://{host_and_db}#postmortem_drafts/{incident_id}"

    async def _write(self, incident_id: str, markdown: str) -> None:
        async with self.db.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO postmortem_drafts (incident_id, markdown) VALUES (%s, %s)"
                " ON CONFLICT (incident_id) DO UPDATE"
                " SET markdown = excluded.markdown, written_at = now()",
                (incident_id, markdown),
            )

    def read(self, incident_id: str) -> str | None:
        return self.db.run(self._read(incident_id))

    async def _read(self, incident_id: str) -> str | None:
        async with self.db.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT markdown FROM postmortem_drafts WHERE incident_id = %s", (incident_id,)
                )
            ).fetchone()
            return str(row[0]) if row else None
