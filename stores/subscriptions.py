"""Stakeholders' standing subscriptions (to a service or a severity), and the
record of which status update reached which subscriber.

The embedded default is one SQLite file under the state dir; a fleet shares
PostgreSQL instead (stores/postgres/subscriptions.py, chosen by
stores/select.py). Subscriptions to one incident are not here: they live in
that incident's communications workflow, which Temporal already shares.

Deliveries are recorded after the channel took the update and looked up
before sending it again: a retry, or a worker that restarts in the middle of
sending, skips what was delivered. What is left is the moment between the
channel taking it and the record being written; an email sent twice in that
moment has the same Message-ID (mail clients show it once) and a webhook the
same Idempotency-Key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from stanch.models.communications import Subscriber, Subscription
from stanch.models.severity import Severity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    scope         TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    subscription  TEXT NOT NULL,
    PRIMARY KEY (scope, subscriber_id)
);
CREATE TABLE IF NOT EXISTS update_deliveries (
    key          TEXT PRIMARY KEY,
    record       TEXT NOT NULL,
    delivered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""


class SubscriptionBook(Protocol):
    def subscribe(self, subscription: Subscription) -> bool: ...
    def unsubscribe(self, scope: str, subscriber_id: str) -> bool: ...
    def listed(self) -> list[Subscription]: ...
    def audience(self, service: str | None, severity: Severity) -> list[Subscriber]: ...


class DeliveryLog(Protocol):
    def delivered(self, key: str) -> bool: ...
    def record(self, key: str, detail: dict[str, Any]) -> None: ...


def audience_of(
    subscriptions: list[Subscription], service: str | None, severity: Severity
) -> list[Subscriber]:
    """Each subscriber once, whichever of their subscriptions matched."""
    found: dict[str, Subscriber] = {}
    for sub in subscriptions:
        if (sub.service is not None and sub.service == service) or (
            sub.severity is not None and sub.severity is severity
        ):
            found.setdefault(sub.subscriber.id, sub.subscriber)
    return list(found.values())


class SqliteSubscriptions:
    """Both stores in one file: subscriptions and the delivery record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ready = False

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Private from the first byte: subscribers' addresses and webhook URLs.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                if not self._ready:
                    conn.executescript(_SCHEMA)
                    self._ready = True
                yield conn
            finally:
                conn.close()

    def subscribe(self, subscription: Subscription) -> bool:
        """True if new; the same subscriber to the same scope is kept once."""
        with self._db() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO subscriptions (scope, subscriber_id, subscription)"
                " VALUES (?, ?, ?)",
                (subscription.scope, subscription.subscriber.id, subscription.model_dump_json()),
            )
            return cursor.rowcount == 1

    def unsubscribe(self, scope: str, subscriber_id: str) -> bool:
        with self._db() as conn:
            cursor = conn.execute(
                "DELETE FROM subscriptions WHERE scope = ? AND subscriber_id = ?",
                (scope, subscriber_id),
            )
            return cursor.rowcount == 1

    def listed(self) -> list[Subscription]:
        with self._db() as conn:
            rows = conn.execute(
                "SELECT subscription FROM subscriptions ORDER BY scope, subscriber_id"
            ).fetchall()
        return [Subscription.model_validate_json(row[0]) for row in rows]

    def audience(self, service: str | None, severity: Severity) -> list[Subscriber]:
        return audience_of(self.listed(), service, severity)

    def delivered(self, key: str) -> bool:
        with self._db() as conn:
            row = conn.execute("SELECT 1 FROM update_deliveries WHERE key = ?", (key,)).fetchone()
        return row is not None

    def record(self, key: str, detail: dict[str, Any]) -> None:
        with self._db() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO update_deliveries (key, record) VALUES (?, ?)",
                (key, json.dumps(detail, default=str)),
            )

    def deliveries(self) -> list[tuple[str, datetime]]:
        """Every delivery recorded, oldest first (tests, drills)."""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT key, delivered_at FROM update_deliveries ORDER BY rowid"
            ).fetchall()
        return [(key, datetime.fromisoformat(at)) for key, at in rows]
