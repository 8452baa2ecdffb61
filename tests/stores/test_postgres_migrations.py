"""`stanch db upgrade` and the schema check at start (stores/postgres/migrations.py):
upgrade from an empty database, a second run that changes nothing, and a
worker, a gateway and the upgrade itself refusing a schema they do not know.
Every command runs as its own process, as an operator would run it."""

from __future__ import annotations

from pathlib import Path

from stanch.harness.ports import free_port
from stanch.harness.postgres import PostgresServer
from stanch.stores.postgres.migrations import KNOWN, migrations
from stanch.testing.decisions import TEST_DECISION_KEY
from tests.support.plans import policy_file
from tests.support.postgres import database_env, new_database, query, run_stanch

TABLES = {
    "audit_records",
    "audit_checkpoints",
    "toggles",
    "toggles_replaced",
    "page_records",
    "postmortem_drafts",
    "subscriptions",  # 0002: status-update subscriptions (issue 17)
    "stanch_schema_version",
}


def tables(url: str) -> set[str]:
    rows = query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows}


def test_upgrade_from_empty_then_again_changes_nothing(postgres: PostgresServer, tmp_path: Path):
    url = new_database(postgres, migrated=False)
    env = database_env(url, tmp_path)
    assert tables(url) == set()

    first = run_stanch(env, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"applied 0001_{migrations()[0].name}" in first.stdout
    assert f"schema version 0 -> {KNOWN}" in first.stdout
    assert tables(url) == TABLES
    versions = query(url, "SELECT version FROM stanch_schema_version ORDER BY version")
    assert versions == [(v,) for v in range(1, KNOWN + 1)]
    assert query(url, "SELECT version, doc FROM toggles") == [(0, {})], "nothing switched off"

    again = run_stanch(env, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert f"schema version {KNOWN}, up to date" in again.stdout
    assert query(url, "SELECT count(*) FROM stanch_schema_version") == [(KNOWN,)]
    assert query(url, "SELECT count(*) FROM toggles") == [(1,)], "no migration ran twice"


def test_a_worker_and_a_gateway_refuse_a_schema_they_do_not_know(
    postgres: PostgresServer, tmp_path: Path
):
    config = policy_file(tmp_path)
    newer = new_database(postgres)
    query(
        newer, "INSERT INTO stanch_schema_version (version, name) VALUES (%s, 'later')", KNOWN + 1
    )
    empty = new_database(postgres, migrated=False)
    gateway = ["gateway", "--port", str(free_port())]

    for url, expected in [
        (newer, f"schema version {KNOWN + 1}, newer than this stanch knows (up to {KNOWN})"),
        (empty, f"no stanch schema; this stanch needs version {KNOWN}"),
    ]:
        env = database_env(
            url, tmp_path, config=config, alert_token="t" * 32, decision_key=TEST_DECISION_KEY
        )
        for command in (["worker"], gateway):
            refused = run_stanch(env, *command)
            assert refused.returncode == 2, (command, refused.stderr)
            assert expected in refused.stderr, (command, refused.stderr)
            if url == empty:
                assert "run `stanch db upgrade`" in refused.stderr
        assert tables(url) <= TABLES, "the refusal created nothing"

    downgrade = run_stanch(database_env(newer, tmp_path), "db", "upgrade")
    assert downgrade.returncode == 2
    assert f"newer than this stanch knows (up to {KNOWN})" in downgrade.stderr
    assert query(newer, "SELECT max(version) FROM stanch_schema_version") == [(KNOWN + 1,)]


def test_a_bad_url_is_exit_2_naming_the_setting_and_never_printing_it(tmp_path: Path):
    for url, problem in [
        ("mysql://ops:hunter2-secret@db.example/stanch", "not a PostgreSQL URL"),
        ("postgresql://ops:hunter2-secret@db.example:notaport/stanch", "STANCH_DATABASE_URL"),
        ("postgresql://ops:hunter2-secret@db.example:5432", "names no database"),
    ]:
        done = run_stanch(database_env(url, tmp_path), "db", "upgrade")
        assert done.returncode == 2, (url, done.stdout, done.stderr)
        assert problem in done.stderr, (url, done.stderr)
        assert "STANCH_DATABASE_URL" in done.stderr
        assert "hunter2" not in done.stderr + done.stdout


def test_an_unreachable_database_is_exit_1(tmp_path: Path):
    url = f"postgresql://ops:hunter2-secret@127.0.0.1:{free_port()}/stanch"
    done = run_stanch(database_env(url, tmp_path), "db", "upgrade")
    assert done.returncode == 1, done.stderr
    assert "cannot be reached" in done.stderr and "hunter2" not in done.stderr
    worker = run_stanch(database_env(url, tmp_path, config=policy_file(tmp_path)), "worker")
    assert worker.returncode == 1, worker.stderr
    assert "cannot be reached" in worker.stderr
