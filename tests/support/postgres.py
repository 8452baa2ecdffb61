"""PostgreSQL for the tests of the shared stores: a fresh database per test on
the session's throwaway server (harness/postgres.py), upgraded to this
release's schema, the settings that select it, and `stanch` or a Python
snippet run as a separate process against it (another worker, another host)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from stanch.harness.postgres import PostgresServer
from stanch.harness.services import stanch_env
from stanch.models.settings import Settings
from stanch.stores.postgres.database import Database
from stanch.stores.postgres.migrations import upgrade

# The fleet's audit key: every writer and the auditor share it.
AUDIT_KEY = "fleet-audit-key-" + "6d1f0c3b9a7e4f25" * 3


def new_database(server: PostgresServer, *, migrated: bool = True) -> str:
    """A database of the test's own, at this release's schema unless `migrated` is False."""
    url = server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    if migrated:
        db = Database(url)
        try:
            db.run(upgrade(db))
        finally:
            db.close()
    return url


def database_settings(url: str, state_dir: Path, **more: Any) -> Settings:
    return Settings(
        database_url=SecretStr(url), state_dir=state_dir, audit_key=SecretStr(AUDIT_KEY), **more
    )


def database_env(url: str, state_dir: Path, **more: Any) -> dict[str, str]:
    """A process's environment with only these settings (nothing of the test's own)."""
    return stanch_env(database_url=url, state_dir=state_dir, audit_key=AUDIT_KEY, **more)


def run_stanch(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def python_process(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Another process of the fleet, running `code` (its output in `.stdout`)."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """What the database holds, read (or changed) with a connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql.encode(), params or None)
        return cursor.fetchall() if cursor.description else []
