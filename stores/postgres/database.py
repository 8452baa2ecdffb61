"""One PostgreSQL database per process: psycopg 3's async driver and its
connection pool, on an event loop of their own in a daemon thread.

The stores keep the interfaces of their file and SQLite versions, which are
called synchronously (from activities, from the gateway through
`asyncio.to_thread`, from the CLI); `run` hands a coroutine to the database's
loop and waits for its answer, bounded, so a database that stops answering
fails a call in seconds instead of holding a runbook or a request forever.
The toggle store's LISTEN connection lives on the same loop.

The URL is a secret (it may hold a password): messages name the database by
`where` (host, port and name), never by its URL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

log = logging.getLogger("stanch.postgres")
T = TypeVar("T")

CONNECT_TIMEOUT = 3  # seconds: a database that does not answer is unreachable, not slow
CALL_TIMEOUT = 10.0  # seconds for one call through `run`, pool wait included
# TCP keepalives, so a connection to a host that vanished (a cut link) fails in
# seconds rather than when the kernel gives up on it.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


class DatabaseUrlError(ValueError):
    """STANCH_DATABASE_URL is not a PostgreSQL URL; the message says why (without it)."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached, or did not answer in time."""


def checked_url(url: str) -> dict[str, Any]:
    """The URL's parts, or DatabaseUrlError naming what is wrong with it."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            "STANCH_DATABASE_URL: not a PostgreSQL URL "
            f"(scheme {scheme or 'missing'!r}; expected postgresql://user@host:port/database)"
        )
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise DatabaseUrlError(f"STANCH_DATABASE_URL: {_without(str(e), url)}") from None
    ports = str(parts.get("port") or "5432").split(",")
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports):
        raise DatabaseUrlError("STANCH_DATABASE_URL: its port is not a number from 1 to 65535")
    if not parts.get("dbname"):
        raise DatabaseUrlError("STANCH_DATABASE_URL: names no database (…/DATABASE at its end)")
    return parts


def describe(parts: dict[str, Any]) -> str:
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or 5432)
    return f"postgresql {host}:{port}/{parts.get('dbname')}"


def _without(text: str, url: str) -> str:
    return text.replace(url, "STANCH_DATABASE_URL") if url else text


class Database:
    def __init__(self, url: str, *, max_size: int = 8, call_timeout: float = CALL_TIMEOUT) -> None:
        parts = checked_url(url)
        self.where = describe(parts)
        self.password = str(parts.get("password") or "")
        self._url = url
        self.call_timeout = call_timeout
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name=f"stanch {self.where}", daemon=True
        )
        self._thread.start()
        self.pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] = self.run(
            self._open_pool(max_size)
        )
        self.closed = False

    async def _open_pool(
        self, max_size: int
    ) -> psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] = (
            psycopg_pool.AsyncConnectionPool(
                self._url,
                min_size=1,
                max_size=max_size,
                open=False,
                kwargs=self.connect_kwargs(),
                # A server restarted since a connection was made leaves it dead in
                # the pool: check each one as it is taken.
                check=psycopg_pool.AsyncConnectionPool.check_connection,
                timeout=CONNECT_TIMEOUT + 2,
                name=self.where,
            )
        )
        await pool.open(wait=False)  # a process may start while the database is down
        return pool

    def connect_kwargs(self) -> dict[str, Any]:
        return {"connect_timeout": CONNECT_TIMEOUT, "application_name": "stanch", **_KEEPALIVES}

    async def connect(self, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        """A connection of its own, outside the pool (LISTEN, migrations)."""
        try:
            return await psycopg.AsyncConnection.connect(
                self._url, **self.connect_kwargs(), **kwargs
            )
        except psycopg.OperationalError as e:
            raise self.unavailable(e) from None

    def unavailable(self, e: BaseException) -> DatabaseUnavailable:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return DatabaseUnavailable(f"{self.where} cannot be reached: {_without(detail, self._url)}")

    def run(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Runs `work` on the database's loop and waits for it (never call it
        from that loop). Unreachable or too slow: DatabaseUnavailable."""
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result(timeout or self.call_timeout)
        except (concurrent.futures.TimeoutError, TimeoutError):
            future.cancel()
            raise DatabaseUnavailable(
                f"{self.where} did not answer within {timeout or self.call_timeout:g}s"
            ) from None
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout, OSError) as e:
            raise self.unavailable(e) from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.run(self.pool.close(timeout=2), timeout=5)
        except Exception as e:  # closing must not fail whoever is stopping
            log.debug("closing the pool of %s: %s", self.where, e)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
