"""Page idempotency for a fleet (stores/postgres/pages.py): two worker
processes retrying the same pages at once page each key once, in the
database and in the sink; a database that cannot be reached fails the append
(the activity retries it) and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stanch.harness.postgres import running_postgres
from stanch.stores.page_file import read_pages
from stanch.stores.select import close_databases, page_files
from tests.support.postgres import (
    database_env,
    database_settings,
    new_database,
    python_process,
    query,
)

KEYS = 150

# A worker retrying every page of a storm: each key is asked for twice.
PAGER = f"""
import sys
from pathlib import Path
from stanch.models.settings import Settings
from stanch.stores.select import page_files

sink = page_files(Settings())(Path(sys.argv[1] if len(sys.argv) > 1 else "{{sink}}"))
print("ready", flush=True)
sys.stdin.readline()
written = 0
for attempt in range(2):
    # The two meet in the middle: each asks for keys the other is paging.
    for i in (range({KEYS}) if "{{name}}" == "worker-a" else reversed(range({KEYS}))):
        key = f"incident-{{i % 10}}/page/{{i}}/pager"
        written += sink.append_once(key, {{"text": f"page {{i}}", "by": "{{name}}"}})
print(written, flush=True)
"""


def test_two_workers_page_each_key_once(database_url: str, tmp_path: Path):
    sink = tmp_path / "pages.jsonl"
    env = database_env(database_url, tmp_path)
    workers = [
        python_process(PAGER.replace("{sink}", str(sink)).replace("{name}", name), env)
        for name in ("worker-a", "worker-b")
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    written = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        written.append(int(out.strip()))

    assert sum(written) == KEYS, written
    print(f"pages written by each worker: {written}")
    rows = query(database_url, "SELECT key, count(*) FROM page_records GROUP BY key")
    assert len(rows) == KEYS and all(count == 1 for _, count in rows)
    pages = read_pages(sink)
    assert sorted(p["key"] for p in pages) == sorted(key for key, _ in rows)
    assert {p["by"] for p in pages} <= {"worker-a", "worker-b"}


def test_an_unreachable_database_fails_the_page_and_writes_nothing(tmp_path: Path):
    with running_postgres() as server:
        url = new_database(server)
        sink = tmp_path / "pages.jsonl"
        pages = page_files(database_settings(url, tmp_path))(sink)
        try:
            assert pages.append_once("incident-1/page/1/pager", {"text": "first"})
            server.stop()
            with pytest.raises(OSError, match="page records in postgresql"):
                pages.append_once("incident-1/page/2/pager", {"text": "second"})
            assert [json.loads(line)["text"] for line in sink.read_text().splitlines()] == ["first"]
            server.start()
            assert pages.append_once("incident-1/page/2/pager", {"text": "second"})
            assert not pages.append_once("incident-1/page/1/pager", {"text": "first"})
        finally:
            close_databases()
