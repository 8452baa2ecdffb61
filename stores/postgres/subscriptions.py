"""Subscriptions and update deliveries shared by a fleet: every gateway adds
to one list and every worker reads it; a delivery recorded by one worker is
seen by the next one to retry it (page_records, sink `status-updates`)."""

from __future__ import annotations

import errno
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from psycopg.types.json import Jsonb

from stanch.models.communications import Subscriber, Subscription
from stanch.models.severity import Severity
from stanch.stores.postgres.database import Database
from stanch.stores.subscriptions import audience_of

SINK = "status-updates"
T = TypeVar("T")


class PostgresSubscriptions:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        # OSError, as the file store raises: the activity retries it.
        try:
            return self.db.run(work)
        except Exception as e:
            if isinstance(e, OSError):
                raise
            raise OSError(errno.EIO, f"subscriptions in {self.db.where}: {e}") from None

    def subscribe(self, subscription: Subscription) -> bool:
        return self._run(self._subscribe(subscription))

    async def _subscribe(self, subscription: Subscription) -> bool:
        async with self.db.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO subscriptions (scope, subscriber_id, subscription)"
                    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                    (
                        subscription.scope,
                        subscription.subscriber.id,
                        Jsonb(subscription.model_dump(mode="json")),
                    ),
                )
            ).fetchone()
            return row is not None

    def unsubscribe(self, scope: str, subscriber_id: str) -> bool:
        return self._run(self._unsubscribe(scope, subscriber_id))

    async def _unsubscribe(self, scope: str, subscriber_id: str) -> bool:
        async with self.db.pool.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM subscriptions WHERE scope = %s AND subscriber_id = %s",
                (scope, subscriber_id),
            )
            return cursor.rowcount == 1

    def listed(self) -> list[Subscription]:
        return self._run(self._listed())

    async def _listed(self) -> list[Subscription]:
        async with self.db.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT subscription FROM subscriptions ORDER BY scope, subscriber_id"
            )
            return [Subscription.model_validate(row[0]) for row in await cursor.fetchall()]

    def audience(self, service: str | None, severity: Severity) -> list[Subscriber]:
        return audience_of(self.listed(), service, severity)

    def delivered(self, key: str) -> bool:
        return self._run(self._delivered(key))

    async def _delivered(self, key: str) -> bool:
        async with self.db.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM page_records WHERE sink = %s AND key = %s", (SINK, key)
                )
            ).fetchone()
            return row is not None

    def record(self, key: str, detail: dict[str, Any]) -> None:
        self._run(self._record(key, detail))

    async def _record(self, key: str, detail: dict[str, Any]) -> None:
        async with self.db.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO page_records (sink, key, record) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (SINK, key, Jsonb(json.loads(json.dumps(detail, default=str)))),
            )
