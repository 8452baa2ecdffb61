"""`stanch runbook check` against sealed histories (the last stop's note): an
incident sealed under a payload key the checking process does not hold is
named as one it cannot read, with the key id, never as a break of the code;
the check still fails (exit 1), since nothing shows the code carries it. With
the key, the same incident replays and the check passes as before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from stanch.client.ids import workflow_id_for
from tests.support.cli import run_stanch
from tests.support.encryption import new_key, write_payload_keys
from tests.support.oncall import open_vm_incident
from tests.support.plans import auth
from tests.support.stack import Stack

REPO = Path(__file__).resolve().parents[2]
KEY_ID = "2026-06"


@pytest.fixture
def stack_payload_keys() -> dict[str, bytes]:
    """The conftest's `stack` seals every payload under this one key."""
    return {KEY_ID: new_key()}


def deploy_job(directory: Path, address: str, keys: Path | None = None) -> Path:
    """A state dir whose env file is all the check gets, as a deploy job's
    environment would be: Temporal's address, and maybe a payload key file."""
    directory.mkdir()
    lines = [f"STANCH_TEMPORAL_ADDRESS={address}"]
    if keys is not None:
        lines.append(f"STANCH_PAYLOAD_KEYS_FILE={keys}")
    (directory / "env").write_text("\n".join(lines) + "\n")
    return directory


async def check(state: Path, *args: str) -> tuple[int, str, str]:
    # In a thread: the stack's worker runs on this test's event loop. Running
    # executions only: closed ones of other tests are theirs to answer for.
    done = await asyncio.to_thread(
        run_stanch, state, REPO, "runbook", "check", "--closed-since", "0s", *args
    )
    return done.returncode, done.stdout, done.stderr


def report_of(out: str, err: str) -> dict[str, Any]:
    assert out.lstrip().startswith("{"), out[:2000] + err  # `--json` prints JSON only
    report: dict[str, Any] = json.loads(out)
    return report


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["workflow_id"]: row for row in rows}


async def test_a_sealed_incident_without_its_key_is_unread_not_broken(
    stack: Stack, stack_payload_keys: dict[str, bytes], tmp_path: Path
):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_vm_incident(stack, http)
        detail = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
        runbook = detail.json()["state"]["runbook"]["workflow_id"]
    sealed = {workflow_id_for(incident): "IncidentWorkflow", runbook: "quarantine_vm"}
    address = stack.client.service_client.config.target_host

    # The review's case: the deploy job was never given the key file.
    keyless = deploy_job(tmp_path / "keyless", address)
    code, out, err = await check(keyless)
    assert code == 1, out + err
    # Not replayed, so no traceback of theirs; an execution other tests leave
    # running on the shared server may fail its replay and log one of its own.
    for workflow_id in sealed:
        assert workflow_id not in err, err
    for workflow_id, kind in sealed.items():
        assert f"CANNOT READ {workflow_id} ({kind}, running, run " in out, out
        assert f"BREAKS {workflow_id}" not in out, out
    assert f"payload encrypted with key id '{KEY_ID}'" in out
    assert "payload keys (none; STANCH_PAYLOAD_KEYS_FILE)" in out
    assert "could not be read here, so were not checked" in out

    code, out, err = await check(keyless, "--json")
    assert code == 1, out + err
    report = report_of(out, err)
    unread = by_id(report["unreadable"])
    for workflow_id, kind in sealed.items():
        assert workflow_id not in by_id(report["broken"])
        assert unread[workflow_id]["workflow_type"] == kind
        assert unread[workflow_id]["running"] is True
        assert f"key id '{KEY_ID}'" in unread[workflow_id]["reason"]

    # Keys, but not this one: the ids it does hold are named.
    other = write_payload_keys(tmp_path / "other.json", {"2025-12": new_key()})
    code, out, err = await check(deploy_job(tmp_path / "other", address, other), "--json")
    assert code == 1, out + err
    unread = by_id(report_of(out, err)["unreadable"])
    for workflow_id in sealed:
        assert "(2025-12; STANCH_PAYLOAD_KEYS_FILE)" in unread[workflow_id]["reason"]

    # The same key id, another key: what was sealed does not authenticate.
    wrong = write_payload_keys(tmp_path / "wrong.json", {KEY_ID: new_key()})
    code, out, err = await check(deploy_job(tmp_path / "wrong", address, wrong), "--json")
    assert code == 1, out + err
    report = report_of(out, err)
    unread = by_id(report["unreadable"])
    for workflow_id in sealed:
        assert workflow_id not in by_id(report["broken"])
        assert "does not authenticate" in unread[workflow_id]["reason"]

    # With the key the stack sealed with, they replay: a pass, as before.
    keys = write_payload_keys(tmp_path / "ci-keys.json", stack_payload_keys)
    keyed = deploy_job(tmp_path / "keyed", address, keys)
    code, out, err = await check(keyed, "--json")
    report = report_of(out, err)
    for workflow_id in sealed:
        assert workflow_id not in by_id(report["unreadable"]), report["unreadable"]
        assert workflow_id not in by_id(report["broken"]), report["broken"]
    # Sealed stacks of tests running alongside hold keys of their own.
    others = report["unreadable"] + report["broken"]
    assert code == (1 if others else 0), out + err
    if not others:
        code, out, err = await check(keyed)
        assert code == 0 and "ok: " in out, out + err
