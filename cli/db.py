"""`stanch db upgrade`: bring the shared database's schema to this release's
version (stores/postgres/migrations/). Safe to run again, and from several
hosts at once: each migration is applied once, whole, in its own transaction.

Exit 2 when STANCH_DATABASE_URL is missing or not a PostgreSQL URL, or the
schema is newer than this release knows; 1 when the database cannot be reached.
"""

from __future__ import annotations

from stanch.cli.errors import Unavailable, UsageError
from stanch.models.settings import Settings
from stanch.stores.postgres.database import Database, DatabaseUnavailable, DatabaseUrlError
from stanch.stores.postgres.migrations import KNOWN, SchemaMismatch, upgrade


def upgrade_database(settings: Settings) -> int:
    if settings.database_url is None:
        raise UsageError(
            "STANCH_DATABASE_URL is not set: there is no shared database to upgrade "
            "(without it, stanch keeps its stores in files under the state dir)"
        )
    try:
        db = Database(settings.database_url.get_secret_value())
    except DatabaseUrlError as e:
        raise UsageError(str(e)) from None
    try:
        before, applied = db.run(upgrade(db), timeout=300)
    except SchemaMismatch as e:
        raise UsageError(str(e)) from None
    except DatabaseUnavailable as e:
        raise Unavailable(str(e)) from None
    finally:
        db.close()
    if not applied:
        print(f"{db.where}: schema version {before}, up to date")
        return 0
    for migration in applied:
        print(f"{db.where}: applied {migration.version:04d}_{migration.name}")
    print(f"{db.where}: schema version {before} -> {KNOWN}")
    return 0
