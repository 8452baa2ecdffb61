"""The kill switch fails closed (security review #10), and only an admin
credential flips it over the on-call API.

Each test attacks the real thing: a real runbook on Temporal changing azuresim
over TLS, the real gateway over HTTP, and a whole `stanch dev` stack as a
process, and checks that the attack failed and that nothing changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY

from stanch.client.ids import workflow_id_for
from stanch.harness.ports import free_port
from stanch.models.risk import Risk
from stanch.models.runbook import RunbookOutcome, RunbookResult, StepStatus
from stanch.models.settings import Settings
from stanch.testing.estate import VM1
from stanch.testing.runbooks import approval_plan, audit_records, journal_mutations, start_runbook
from stanch.testing.started import Started
from tests.support.cli import run_stanch
from tests.support.oncall import open_vm_incident
from tests.support.plans import auth
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
DEMO_ALERT = ROOT / "examples" / "demo" / "vm-web-1-unavailable.json"

# The review's reproductions (A), and their near relatives: each one a plausible
# hand edit that once let remediation run.
NOT_A_CLEAN_SWITCH = {
    "enabled is the string false": '{"remediation": {"enabled": "false", "by": "dave"}}',
    "enabled is 0": '{"remediation": {"enabled": 0}}',
    "enabled is off": '{"remediation": {"enabled": "off"}}',
    "enabled is null": '{"remediation": {"enabled": null}}',
    "a bare false for a scope": '{"remediation": false}',
    "a bare false for a runbook": '{"runbooks": {"quarantine_vm": false}}',
    "a misspelt key": '{"remediaton": {"enabled": false}}',
    "a key given twice": '{"remediation": {"enabled": false, "enabled": true}}',
    "a runbook not spelt as runbooks are": '{"runbooks": {"quarantine-vm": {"enabled": false}}}',
    # Reproduction B's file.
    "a syntax error": '{"remediation": {"enabled": false, "by": "dave",}',
    "an empty file": "",
    "not an object": "[]",
}


async def quarantine_unattended(started: Started, ts_env: Any, settings: Settings) -> RunbookResult:
    """quarantine_vm with its high-risk step auto-approved: nothing but the
    kill switch stands between it and its first change."""
    handle = await start_runbook(
        started,
        ts_env.client,
        settings.task_queue,
        "quarantine_vm",
        VM1,
        plan=approval_plan(auto_approve=[Risk.HIGH]),
    )
    result = await handle.result()
    assert isinstance(result, RunbookResult)
    return result


def unreadable_gauge() -> float | None:
    return REGISTRY.get_sample_value("stanch_kill_switch_unreadable")


@pytest.mark.parametrize("content", NOT_A_CLEAN_SWITCH.values(), ids=NOT_A_CLEAN_SWITCH.keys())
async def test_a_switch_that_is_not_clean_halts_remediation(
    ts_env, runbooks, sim, caplog, started, content: str
):
    toggles = runbooks.toggles_path
    toggles.write_text(content)
    caplog.set_level(logging.ERROR, logger="stanch.toggles")

    result = await quarantine_unattended(started, ts_env, runbooks)

    assert result.outcome is RunbookOutcome.HALTED, result.summary
    assert result.summary.startswith("halted: the kill switch cannot be read (toggles.json: ")
    assert journal_mutations(sim) == [], "nothing changed in Azure"
    assert not [s for s in result.steps if s.mutates and s.status is StepStatus.SUCCEEDED]
    assert result.applied == []
    assert toggles.read_text() == content, "the operator's file is left as they wrote it"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(toggles) in e and "remediation halted" in e for e in errors), errors
    assert unreadable_gauge() == 1.0


async def test_an_unreadable_file_halts_remediation(ts_env, runbooks, sim, started):
    runbooks.toggles_path.mkdir()  # exists, cannot be read as a file
    result = await quarantine_unattended(started, ts_env, runbooks)
    assert result.outcome is RunbookOutcome.HALTED, result.summary
    assert "cannot be read" in result.summary
    assert journal_mutations(sim) == []


@pytest.mark.parametrize(
    "content",
    ['{"remediation": {"enabled": true, "by": "dave", "reason": null}}', "{}", None],
    ids=["switched on", "empty object", "no file"],
)
async def test_a_clean_switch_that_is_on_lets_remediation_run(
    ts_env, runbooks, sim, started, content
):
    """The other side of the tests above: they halt because of the file."""
    if content is not None:
        runbooks.toggles_path.write_text(content)
    result = await quarantine_unattended(started, ts_env, runbooks)
    assert result.outcome is RunbookOutcome.CONTAINED, result.summary
    assert journal_mutations(sim) != []
    assert unreadable_gauge() == 0.0


# ---- the on-call API ---------------------------------------------------------


def toggle_records(state_dir: Path) -> list[dict[str, Any]]:
    return [
        r
        for r in audit_records(state_dir)
        if r["action"] in ("toggle remediation", "set log level")
    ]


async def test_only_an_admin_credential_flips_the_switch(stack: Stack, tmp_path: Path):
    toggles = tmp_path / "toggles.json"
    base = f"{stack.url}/api/toggles"
    off = {"enabled": False, "reason": "responder wants quiet"}
    async with httpx.AsyncClient(timeout=30) as http:
        for role in ("viewer", "responder", "approver"):
            for method in ("PUT", "POST"):
                refused = await http.request(
                    method, f"{base}/remediation", json=off, headers=auth(role)
                )
                assert refused.status_code == 403, (role, method, refused.text)
                assert "admin" in refused.json()["message"]
            level = await http.post(
                f"{base}/log-level", json={"level": "debug"}, headers=auth(role)
            )
            assert level.status_code == 403, (role, level.text)
        anonymous = await http.put(f"{base}/remediation", json=off)
        assert anonymous.status_code == 401

        assert not toggles.exists(), "nothing was written"
        assert toggle_records(tmp_path) == [], "and nothing was recorded as done"
        seen = await http.get(base, headers=auth("viewer"))
        assert seen.status_code == 200, seen.text
        assert seen.json()["readable"] and not seen.json()["remediation_halted"]

        # Bad input from an admin is a 422 naming the field, and changes nothing.
        for body, field in [
            ({"enabled": "false"}, "enabled"),
            ({"enabled": 0}, "enabled"),
            ({"enabled": False, "runbook": "no_such_runbook"}, "runbook"),
            ({"enabled": False, "runbook": "quarantine-vm"}, "runbook"),
            ({"enabled": False, "by": "carol"}, "by"),
        ]:
            bad = await http.put(f"{base}/remediation", json=body, headers=auth("admin"))
            assert bad.status_code == 422, (body, bad.text)
            assert field in bad.text, (body, bad.text)
        bad_level = await http.post(f"{base}/log-level", json={"level": 3}, headers=auth("admin"))
        assert bad_level.status_code == 422 and "level" in bad_level.text
        assert not toggles.exists()

        level = await http.post(f"{base}/log-level", json={"level": "debug"}, headers=auth("admin"))
        assert level.status_code == 200, level.text
        assert level.json()["log_level"]["level"] == "debug"
        assert level.json()["log_level"]["by"] == "dave"
    (record,) = toggle_records(tmp_path)
    assert (record["actor"], record["action"], record["outcome"]) == (
        "dave",
        "set log level",
        "debug",
    )


async def test_an_admin_halts_a_running_runbook_before_its_next_change(
    stack: Stack, tmp_path: Path
):
    async with httpx.AsyncClient(timeout=30) as http:
        # quarantine_vm has captured evidence and waits for approval of `isolate`.
        incident = await open_vm_incident(stack, http)
        changes_before = [c for c in stack.sim.journal.calls() if c["mutation"]]

        flipped = await http.put(
            f"{stack.url}/api/toggles/remediation",
            json={"enabled": False, "reason": "drill"},
            headers=auth("admin"),
        )
        assert flipped.status_code == 200, flipped.text
        assert flipped.json()["remediation_halted"] is True
        assert flipped.json()["remediation"]["by"] == "dave", "the credential's person"

        approved = await http.post(
            f"{stack.url}/api/incidents/{incident}/approvals/isolate/approve",
            json={"comment": "go"},
            headers=auth("approver"),
        )
        assert approved.status_code == 200, approved.text

        deadline = asyncio.get_running_loop().time() + 30
        while True:
            detail = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
            result = detail.json()["state"].get("runbook_result")
            if result is not None:
                break
            assert asyncio.get_running_loop().time() < deadline, detail.text
            await asyncio.sleep(0.1)
    assert result["outcome"] == "halted", result["summary"]
    assert "remediation switched off by dave: drill" in result["summary"]
    assert [c for c in stack.sim.journal.calls() if c["mutation"]] == changes_before
    (record,) = toggle_records(tmp_path)
    assert (record["actor"], record["action"], record["target"], record["outcome"]) == (
        "dave",
        "toggle remediation",
        "all runbooks",
        "off",
    )
    await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")


async def test_a_broken_store_over_the_api(stack: Stack, tmp_path: Path):
    toggles = tmp_path / "toggles.json"
    toggles.write_text('{"remediation": {"enabled": "off"}}')
    base = f"{stack.url}/api/toggles"
    async with httpx.AsyncClient(timeout=30) as http:
        seen = (await http.get(base, headers=auth("viewer"))).json()
        assert not seen["readable"] and seen["remediation_halted"]
        assert "toggles.json" in seen["problem"] and "remediation.enabled" in seen["problem"]

        on = {"enabled": True, "reason": "looks fine to me"}
        refused = await http.put(f"{base}/remediation", json=on, headers=auth("admin"))
        assert refused.status_code == 409, refused.text
        assert "replace_unreadable" in refused.json()["message"]
        assert toggles.read_text() == '{"remediation": {"enabled": "off"}}'
        assert toggle_records(tmp_path) == []

        mended = await http.put(
            f"{base}/remediation", json={**on, "replace_unreadable": True}, headers=auth("admin")
        )
        assert mended.status_code == 200, mended.text
        assert mended.json()["readable"] and not mended.json()["remediation_halted"]
    assert len(list(tmp_path.glob("toggles.json.unreadable-*"))) == 1


# ---- a whole `stanch dev` stack ------------------------------------------------


class DevProcess:
    def __init__(self, workdir: Path, ports: dict[str, int], token: str) -> None:
        self.workdir, self.ports, self.token = workdir, ports, token
        self.state = workdir / "state"
        self.log = workdir / "dev.log"
        self.url = f"http://127.0.0.1:{ports['http']}"
        self.process: subprocess.Popen[bytes] | None = None

    def stanch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_stanch(self.state, self.workdir, *args)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def until(self, what: str, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            assert self.alive(), f"stanch dev ended while waiting for {what}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {what}:\n{self.output()[-4000:]}"
            time.sleep(0.2)


@pytest.fixture
def dev_process(tmp_path: Path) -> Iterator[DevProcess]:
    """`stanch dev` with the demo plan, its high-risk steps auto-approved (only
    the kill switch stands before a change) and one admin credential."""
    token = secrets.token_urlsafe(32)
    plan = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    plan["approvals"]["auto_approve"] = ["low", "medium", "high"]
    for tier in plan["escalation_policies"]["default"]["tiers"]:
        tier["timeout"] = "1h"
    plan["incident"]["reopen_window"] = "1h"
    access = plan.setdefault("access", {})
    access.setdefault("tokens", []).append({"person": "carol", "role": "admin", "token": token})
    config = tmp_path / "stanch.yaml"
    config.write_text(yaml.safe_dump(plan))
    ports = {name: free_port() for name in ("http", "temporal", "ui", "sim", "metrics")}
    dev = DevProcess(tmp_path, ports, token)
    with dev.log.open("wb") as log:
        dev.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stanch.cli.main",
                "dev",
                "--state-dir",
                str(dev.state),
                "--config",
                str(config),
                *[f"--{name}-port={port}" for name, port in ports.items()],
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        dev.until("gateway", lambda: _healthy(dev.url), timeout=120)
        yield dev
    finally:
        if dev.alive():
            assert dev.process is not None
            dev.process.send_signal(signal.SIGINT)
            try:
                dev.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dev.process.kill()
                dev.process.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_broken_toggle_file_halts_remediation_and_the_stack_keeps_serving(
    dev_process: DevProcess,
):
    dev = dev_process
    toggles = dev.state / "toggles.json"
    broken = '{"remediation": {"enabled": false, "by": "dave",}'  # reproduction B
    toggles.write_text(broken)

    # The log-level follower reads the store every 2 s: the error naming the
    # file is its reading (nothing else reads the store until an alert comes).
    dev.until("error naming the file", lambda: f"{toggles.resolve()}" in dev.output())
    line = next(
        json.loads(text)
        for text in dev.output().splitlines()
        if text.startswith("{") and str(toggles.resolve()) in text
    )
    assert line["level"] == "error" and "remediation halted" in line["msg"]
    assert dev.alive() and _healthy(dev.url), "the stack is still serving"

    # The worker still runs incidents: this one opens, pages and runs its
    # runbook, which stops before its first change.
    sent = dev.stanch("alert", "send", str(DEMO_ALERT))
    assert sent.returncode == 0, sent.stderr + dev.output()[-3000:]
    incident = json.loads(sent.stdout)["incident_id"]
    headers = {"Authorization": f"Bearer {dev.token}"}

    def finished_runbook() -> dict[str, Any] | None:
        answer = httpx.get(f"{dev.url}/api/incidents/{incident}", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        detail: dict[str, Any] = answer.json()
        return detail if detail["state"].get("runbook_result") else None

    detail = dev.until("runbook result", finished_runbook)
    result = detail["state"]["runbook_result"]
    assert result["outcome"] == "halted", result["summary"]
    assert "kill switch cannot be read (toggles.json" in result["summary"]
    assert "paged" in [e["kind"] for e in detail["timeline"]]

    env = dict(line.split("=", 1) for line in (dev.state / "env").read_text().splitlines())
    from stanch.azuresim.admin import SimAdmin

    sim = SimAdmin(env["STANCH_AZURE_ENDPOINT"], Path(env["STANCH_AZURE_CA_FILE"]))
    try:
        assert sim.mutations() == [], "nothing changed in Azure"
    finally:
        sim.close()
    assert toggles.read_text() == broken

    metrics = httpx.get(f"{dev.url}/metrics", timeout=10).text
    assert "stanch_kill_switch_unreadable 1.0" in metrics
    worker_metrics = httpx.get(f"http://127.0.0.1:{dev.ports['metrics']}/metrics", timeout=10)
    assert "stanch_kill_switch_unreadable" in worker_metrics.text

    page = httpx.get(f"{dev.url}/", cookies={"stanch_token": dev.token}, timeout=10)
    assert page.status_code == 200, page.text[:500]
    assert "id='kill-switch'" in page.text and "Remediation halted" in page.text
    assert "toggles.json" in page.text

    assert dev.alive() and _healthy(dev.url), "still serving after all of it"
    assert dev.process is not None
    dev.process.send_signal(signal.SIGINT)
    assert dev.process.wait(timeout=60) == 0, dev.output()[-3000:]
    assert "stanch dev stopped" in dev.output()
