"""`stanch runbook check` (issue 13, the second "Shown by"): a quarantine_vm
instance waits at its approval gate on the dev server; the check, run as CI
would against the code about to be deployed, names it when that code adds a
step before the gate, and passes once the step is behind workflow.patched."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from stanch.client.ids import workflow_id_for
from tests.support.cli import run_stanch
from tests.support.oncall import open_vm_incident
from tests.support.plans import auth
from tests.support.stack import Stack

REPO = Path(__file__).resolve().parents[2]  # the changed code is importable from here
NEW_STEP = "tests.support.changed_code.quarantine_new_step"
NEW_STEP_PATCHED = "tests.support.changed_code.quarantine_new_step_patched"


def temporal_only(directory: Path, address: str) -> Path:
    """A state dir whose env file gives the check Temporal's address, as a
    deploy job's STANCH_TEMPORAL_ADDRESS would."""
    directory.mkdir(exist_ok=True)
    (directory / "env").write_text(f"STANCH_TEMPORAL_ADDRESS={address}\n")
    return directory


async def check(state: Path, *args: str) -> tuple[int, str, str]:
    # In a thread: the stack's worker runs on this test's event loop.
    done = await asyncio.to_thread(run_stanch, state, REPO, "runbook", "check", *args)
    return done.returncode, done.stdout, done.stderr


async def test_check_names_the_waiting_instance_a_change_would_break(stack: Stack, tmp_path: Path):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_vm_incident(stack, http)
        detail = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
        runbook = detail.json()["state"]["runbook"]["workflow_id"]
    address = stack.client.service_client.config.target_host
    state = temporal_only(tmp_path / "ci", address)
    try:
        code, out, err = await check(state, "--runbook-module", NEW_STEP)
        assert code == 1, out + err
        assert f"BREAKS {runbook} (quarantine_vm, running" in out
        assert "[TMPRL1100] Nondeterminism error" in out
        assert "would break on this code" in out

        code, out, err = await check(state, "--runbook-module", NEW_STEP, "--json")
        assert code == 1, out + err
        assert out.lstrip().startswith("{"), out[:500] + err
        report = json.loads(out)
        broken = {b["workflow_id"]: b for b in report["broken"]}
        assert broken[runbook]["running"] is True
        assert {t["workflow_type"] for t in report["types"]} >= {
            "IncidentWorkflow",
            "detector",
            "quarantine_vm",
        }

        # Running instances only: closed ones of other tests on the shared
        # server are theirs to answer for.
        code, out, err = await check(
            state, "--runbook-module", NEW_STEP_PATCHED, "--closed-since", "0s"
        )
        assert code == 0, out + err
        assert out.startswith("ok: ") or "\nok: " in out, out
        assert "BREAKS" not in out

        # Today's code carries today's instances.
        code, out, err = await check(state, "--closed-since", "0s")
        assert code == 0, out + err
    finally:
        await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")


async def test_check_caps_each_type_and_says_so(stack: Stack, tmp_path: Path):
    async with httpx.AsyncClient(timeout=30) as http:
        incidents = [await open_vm_incident(stack, http) for _ in range(2)]
    state = temporal_only(tmp_path / "ci", stack.client.service_client.config.target_host)
    try:
        code, out, err = await check(state, "--limit", "1", "--json")
        assert code == 0, out + err
        quarantines = next(
            t for t in json.loads(out)["types"] if t["workflow_type"] == "quarantine_vm"
        )
        assert quarantines["checked"] == 1 and quarantines["matching"] >= 2
        assert quarantines["capped"] is True
        code, out, err = await check(state, "--limit", "1")
        assert "quarantine_vm: checked 1 of" in out and "capped" in out
    finally:
        for incident in incidents:
            await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("done")


async def test_bad_input_is_exit_2_naming_the_flag(tmp_path: Path):
    # Nothing listens here: bad input is refused before Temporal is asked.
    state = temporal_only(tmp_path / "ci", "127.0.0.1:1")
    for args, named in (
        (["--closed-since", "soon"], "--closed-since: not a duration: 'soon'"),
        (["--closed-since", "400d"], "--closed-since: between 0s and 90d"),
        (["--limit", "0"], "--limit: at least 1"),
        (
            ["--runbook-module", "no.such.module"],
            "--runbook-module: cannot import 'no.such.module'",
        ),
        (["--runbook-module", "tests.support.cli"], "defines no workflow class"),
        (["--config", str(tmp_path / "missing.yaml")], "missing.yaml"),
    ):
        code, out, err = await check(state, *args)
        assert code == 2, (args, out, err)
        assert named in err, (args, err)
        assert "Traceback" not in err
