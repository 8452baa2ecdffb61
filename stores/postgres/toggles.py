"""The kill switch and log level in PostgreSQL, for a fleet: one row every
worker and gateway reads, so `stanch toggle remediation off` stops runbooks on
every host before their next change.

Each process keeps a snapshot of the row, fed by LISTEN/NOTIFY (a change is
committed with a NOTIFY, and every listener re-reads the row at once: a flip
reaches every process in milliseconds) and re-read every `refresh_seconds`
in case a notification was lost. The log level, the dashboard and the
on-call API read the snapshot. The remediation check itself reads the row at
each check: a kill switch is never answered from memory.

It fails closed, like the file: a database that cannot be reached (or a row
that breaks the schema) halts remediation, with the reason; while the LISTEN
connection is down the snapshot is not trusted, and reads go to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from stanch.models.errors import describe_validation_error
from stanch.models.toggles import RemediationAllowed, Toggles
from stanch.stores.postgres.database import Database, DatabaseUnavailable
from stanch.stores.toggles import (
    ToggleRefused,
    ToggleStore,
    ToggleStoreUnavailable,
    ToggleStoreUnreadable,
)

log = logging.getLogger("stanch.toggles")
CHANNEL = "stanch_toggles"
# What messages call the store (the file store names its file).
LABEL = Path("toggles table")


class PostgresToggleStore(ToggleStore):
    def __init__(self, db: Database, *, refresh_seconds: float = 5.0) -> None:
        super().__init__(LABEL)
        self.db = db
        self.refresh_seconds = refresh_seconds
        self._changed = threading.Condition()
        self._snapshot: tuple[int, Toggles | ToggleStoreUnreadable] | None = None
        self._live = False  # the LISTEN connection is up: the snapshot is current
        self._fresh = threading.local()
        self._listener = asyncio.run_coroutine_threadsafe(self._listen(), db.loop)

    # ---- reading ----------------------------------------------------------

    def _parse(self) -> Toggles:
        snapshot = self._snapshot
        if self._live and snapshot is not None and not getattr(self._fresh, "on", False):
            found = snapshot[1]
        else:
            try:
                found = self._parsed(*self.db.run(self._fetch_now(), timeout=5))[1]
            except DatabaseUnavailable as e:
                raise ToggleStoreUnavailable(self.path, str(e)) from None
        if isinstance(found, ToggleStoreUnreadable):
            raise found
        return found

    async def _fetch_now(self) -> tuple[int, Any]:
        if self._live:
            async with self.db.pool.connection() as conn:
                return await _fetch_on(conn)
        # Not following the database: it may be down, and a connection of our
        # own is refused at once, where the pool would wait for one.
        conn = await self.db.connect(autocommit=True)
        try:
            return await _fetch_on(conn)
        finally:
            await conn.close()

    def answer(self, runbook: str) -> tuple[RemediationAllowed, bool]:
        self._fresh.on = True  # the kill switch as the database holds it now
        try:
            return super().answer(runbook)
        finally:
            self._fresh.on = False

    def _parsed(self, version: int, doc: Any) -> tuple[int, Toggles | ToggleStoreUnreadable]:
        try:
            return version, Toggles.model_validate(doc)
        except ValidationError as e:
            problems = "; ".join(describe_validation_error(e))
            return version, ToggleStoreUnreadable(
                self.path, f"breaks the toggle schema: {problems}"
            )

    @property
    def live(self) -> bool:
        """The snapshot follows the database (its LISTEN connection is up)."""
        return self._live

    def version(self) -> int | None:
        """The version of the row in the snapshot (each change adds one)."""
        return self._snapshot[0] if self._snapshot else None

    def wait_for_change(self, after: int | None, timeout: float) -> int | None:
        """Blocks until the snapshot's version differs from `after`; returns it."""
        with self._changed:
            self._changed.wait_for(lambda: self.version() != after, timeout)
            return self.version()

    # ---- following the row ---------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.2
        while not self.db.closed:
            try:
                conn = await self.db.connect(autocommit=True)
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await self._refresh(conn)
                    self._live, backoff = True, 0.2
                    log.info("kill switch: following %s", self.db.where)
                    while True:
                        async for _ in conn.notifies(timeout=self.refresh_seconds, stop_after=1):
                            pass
                        # Notified, or the periodic re-read: either way, read the row.
                        await asyncio.wait_for(self._refresh(conn), timeout=5)
                finally:
                    self._live = False
                    with contextlib.suppress(Exception):
                        await conn.close()
            except (DatabaseUnavailable, psycopg.Error, OSError, TimeoutError) as e:
                if backoff == 0.2 and not self.db.closed:  # once per loss, not per retry
                    log.warning("kill switch: not following %s (%s)", self.db.where, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _refresh(self, conn: psycopg.AsyncConnection[Any]) -> None:
        version, doc = await _fetch_on(conn)
        with self._changed:
            self._snapshot = self._parsed(version, doc)
            self._changed.notify_all()

    # ---- changing ----------------------------------------------------------

    @contextlib.contextmanager
    def _changing(self, replace_unreadable: bool) -> Iterator[Toggles]:
        """Read under a row lock, change, validate, write and NOTIFY, in one
        transaction: two admins never lose each other's change."""
        pooled = self._live  # else the database may be down: fail at once, not after a wait
        conn = self._run(self.db.pool.getconn() if pooled else self.db.connect())
        committed = False
        try:
            version, doc = self._run(_fetch_on(conn, lock=True))
            found = self._parsed(version, doc)[1]
            if isinstance(found, ToggleStoreUnreadable):
                if not replace_unreadable:
                    raise found
                self._run(
                    conn.execute("INSERT INTO toggles_replaced (doc) VALUES (%s)", (Jsonb(doc),))
                )
                log.warning("kill switch: unreadable toggles row kept aside and replaced")
                found = Toggles()
            yield found
            data = found.model_dump(mode="json", exclude_none=True)
            try:
                Toggles.model_validate(data)
            except ValidationError as e:
                raise ToggleRefused("; ".join(describe_validation_error(e))) from None
            self._run(_write(conn, data))
            committed = True
        finally:
            if not committed:
                with contextlib.suppress(Exception):
                    self.db.run(conn.rollback(), timeout=5)
            with contextlib.suppress(Exception):
                self.db.run(self.db.pool.putconn(conn) if pooled else conn.close(), timeout=5)

    def _run(self, work: Any) -> Any:
        try:
            return self.db.run(work)
        except DatabaseUnavailable as e:
            raise ToggleStoreUnavailable(self.path, str(e)) from None

    def close(self) -> None:
        self._listener.cancel()


async def _fetch_on(conn: psycopg.AsyncConnection[Any], lock: bool = False) -> tuple[int, Any]:
    query = "SELECT version, doc FROM toggles WHERE id" + (" FOR UPDATE" if lock else "")
    row = await (await conn.execute(query.encode())).fetchone()
    if row is None:  # the row is made by the first migration; deleted by hand, nothing is set
        return 0, {}
    return int(row[0]), row[1]


async def _write(conn: psycopg.AsyncConnection[Any], data: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO toggles (id, doc, version, changed_at) VALUES (true, %s, 1, now())"
        " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc,"
        " version = toggles.version + 1, changed_at = now()",
        (Jsonb(data),),
    )
    await conn.execute(
        "SELECT pg_notify(%s, (SELECT version FROM toggles WHERE id)::text)", (CHANNEL,)
    )
    await conn.commit()


def wait_until_live(store: PostgresToggleStore, timeout: float = 10.0) -> None:
    """For whoever must know the snapshot follows the database before going on (tests)."""
    deadline = time.monotonic() + timeout
    while not store.live:
        if time.monotonic() > deadline:
            raise DatabaseUnavailable(f"{store.db.where}: not following it within {timeout:g}s")
        time.sleep(0.02)
