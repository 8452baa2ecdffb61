"""`make demo`'s walkthrough on a fleet's shared stores (issue 14, the second
"Shown by"): the same `stanch demo`, with STANCH_DATABASE_URL and
STANCH_EVIDENCE_URL set after `stanch db upgrade`, ends with exit 0 and keeps
what a fleet shares where a fleet can share it: the audit chain, the page
records, the postmortem draft and the kill switch in PostgreSQL, the evidence
in Blob Storage (Azurite) with its SHA-256, and none of them on its own disk.

`stanch dev` with no such setting (files, for a newcomer) is
tests/cli/test_dev_command.py's; this is the same command with two settings."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from azure.storage.blob import ContainerClient

from stanch.harness.azurite import running_azurite
from stanch.harness.ports import free_port
from stanch.harness.postgres import PostgresServer
from stanch.harness.services import stanch_env
from stanch.stores.page_file import read_pages
from stanch.stores.postgres.migrations import KNOWN, NEEDS
from tests.support.azurite import blob_names, fresh_container, tagged
from tests.support.logs import logged
from tests.support.postgres import AUDIT_KEY, new_database, query, run_stanch

# `stanch demo` itself (cli/main.py's command), on free ports instead of its
# fixed ones: tests and someone's `make demo` run side by side.
DEMO = """
import sys
from stanch.cli import demo, main
demo.PORTS.update({ports})
sys.exit(main.main(["demo"]))
"""
PORT_FLAGS = ("--http-port", "--temporal-port", "--ui-port", "--sim-port", "--metrics-port")
# A kill switch engaged on the local disk. With a database configured the
# fleet's switch is the database's: were this file read, quarantine_vm would
# halt before its first change and the demo would fail.
LOCAL_SWITCH_OFF = {
    "remediation": {"enabled": False, "by": "someone", "reason": "a stale local file"},
    "log_level": {"level": "error", "by": "someone"},
}


def run_demo(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ports = {flag: free_port() for flag in PORT_FLAGS}
    process = subprocess.Popen(
        [sys.executable, "-c", DEMO.format(ports=repr(ports))],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its `stanch dev` too: one group to stop on a timeout
    )
    try:
        out, _ = process.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        raise AssertionError(f"stanch demo did not finish:\n{out[-6000:]}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


async def test_the_demo_keeps_every_shared_fact_in_postgresql_and_blob_storage(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = new_database(postgres, migrated=False)
    (tmp_path / "azurite").mkdir()
    async with running_azurite(tmp_path / "azurite") as azurite:
        container = fresh_container(azurite)
        try:
            local_switch = tmp_path / "local-toggles.json"
            local_switch.write_text(json.dumps(LOCAL_SWITCH_OFF))
            env = stanch_env(
                database_url=url,
                audit_key=AUDIT_KEY,
                evidence_url=f"{azurite.account_url}/{container.container_name}",
                evidence_connection_string=azurite.connection_string,
                toggles_file=local_switch,
            )

            upgraded = run_stanch(env, "db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr
            assert "applied 0001_shared_stores" in upgraded.stdout
            # The fleet's log level, set where every process reads it.
            query(url, """UPDATE toggles SET doc = %s, version = version + 1""", DEBUG_LEVEL)

            demo = run_demo(tmp_path, env)
            assert demo.returncode == 0, demo.stdout[-6000:]
            check_what_was_kept(url, container, tmp_path / ".stanch-demo", env)
        finally:
            container.close()


DEBUG_LEVEL = json.dumps({"log_level": {"level": "debug", "by": "dave"}})


def check_what_was_kept(
    url: str, container: ContainerClient, state: Path, env: dict[str, str]
) -> None:
    records = [
        json.loads(r) for (r,) in query(url, "SELECT record FROM audit_records ORDER BY seq")
    ]
    incidents = {r["incident_id"] for r in records if r["action"] == "alert received"}
    assert len(incidents) == 2, "the demo's two incidents, both recorded in PostgreSQL"
    actions = {r["action"] for r in records}
    assert {"page", "acknowledge", "approval: isolate"} <= actions, actions

    # Evidence: the runbook's bundle (and whatever forensics it kept) in the
    # container under the incident, each blob's SHA-256 in its metadata equal
    # to the hash of what the service returns, and the bundle's in the chain.
    (captured,) = [r for r in records if r["action"] == "capture evidence"]
    incident = captured["incident_id"]
    names = blob_names(container)
    assert f"{incident}/vm-web-1.json" in names
    assert tagged(container, incident) == names, "every blob is the incident's, by its tag"
    for name in names:
        blob = container.get_blob_client(name)
        sha256 = hashlib.sha256(blob.download_blob().readall()).hexdigest()
        assert blob.get_blob_properties().metadata["sha256"] == sha256, name
    bundle = container.get_blob_client(f"{incident}/vm-web-1.json")
    assert captured["details"]["evidence"] == bundle.url
    assert captured["details"]["sha256"] == bundle.get_blob_properties().metadata["sha256"]

    # Pages: every page the file sink shows was claimed in the database.
    shown = {page["key"] for page in read_pages(state / "pages.jsonl")}
    claimed = {key for (key,) in query(url, "SELECT key FROM page_records")}
    assert len(shown) >= 3 and claimed == shown, (claimed, shown)

    # The closed incident's postmortem draft.
    (closed,) = incidents - {incident}
    assert query(url, "SELECT 1 FROM postmortem_drafts WHERE incident_id = %s", closed)

    # The kill switch and log level: the database's row (the local file said
    # remediation off and level error, and quarantine_vm still contained the VM).
    assert logged(state / "dev.log", "log level is now debug"), "the stack follows the database"
    (doc,) = query(url, "SELECT doc FROM toggles")[0]
    assert doc["log_level"]["level"] == "debug" and "remediation" not in doc

    # Nothing the fleet shares stayed on this machine's disk.
    for local in ("audit.db", "audit.checkpoints", "evidence", "postmortems", "toggles.json"):
        assert not (state / local).exists(), f"{local} was written to the state dir"

    # And the auditor reads the same chain from the database.
    verified = run_stanch(env, "--state-dir", str(state), "audit", "verify", "--no-temporal")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit_records" in verified.stdout or url.rsplit("/", 1)[-1] in verified.stdout


def test_stanch_dev_refuses_a_database_it_cannot_run_on_before_making_anything(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """A database never upgraded, and a URL that is not PostgreSQL's: exit 2
    saying what to do, and nothing made (no state dir, no Temporal, no
    azuresim, no table in the database)."""
    never_upgraded = new_database(postgres, migrated=False)
    for url, says in [
        (
            never_upgraded,
            f"has no stanch schema; this stanch needs version {NEEDS} (it knows up to {KNOWN}): "
            "run `stanch db upgrade`",
        ),
        (
            "mysql://someone:pw-not-shown@127.0.0.1/stanch",
            "STANCH_DATABASE_URL: not a PostgreSQL URL (scheme 'mysql'",
        ),
    ]:
        state = tmp_path / "state"
        dev = subprocess.run(
            [sys.executable, "-m", "stanch.cli.main", "--state-dir", str(state), "dev"]
            + [arg for flag in PORT_FLAGS for arg in (flag, str(free_port()))],
            cwd=tmp_path,
            env=stanch_env(database_url=url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert dev.returncode == 2, dev.stdout + dev.stderr
        assert says in dev.stderr
        assert "pw-not-shown" not in dev.stdout + dev.stderr
        assert not state.exists(), sorted(p.name for p in state.iterdir())
    assert query(never_upgraded, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [
        (0,)
    ]
