"""Issue 13's first proof, as a team lives it: stanch's wheel in a clean
virtual environment outside the repository; `stanch runbook new --package` in
another folder; the package installed, its generated tests passing with that
environment's pytest; then `stanch dev` with the team's runbook bound, a
matching alert through the gateway, an approval through the on-call API (a
development credential), and azuresim's journal holding exactly the team
runbook's writes. Nothing is downloaded: dependencies are borrowed as a path."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stanch.harness.ports import free_port
from stanch.harness.processes import die_with_parent
from stanch.harness.waiting import wait_until
from stanch.testing.estate import DEMO_ALERT, VM1
from tests.support.packaging import clean_venv_with, pip_install, user_env

BINDING = """runbooks:
  - runbook: disk_guard
    match: {resource_ids: ["*/virtualmachines/vm-web-1"]}
"""


class TeamMachine:
    """A clean environment with stanch's wheel, and a folder to work in."""

    def __init__(self, venv: Path, home: Path) -> None:
        self.venv, self.home = venv, home
        self.env = user_env(venv)

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 180):
        return subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=cwd or self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def machine(tmp_path: Path, built_wheel: Path) -> TeamMachine:
    home = tmp_path / "home"
    home.mkdir()
    return TeamMachine(clean_venv_with(built_wheel, tmp_path), home)


@pytest.fixture
def dev_stack(machine: TeamMachine) -> Iterator[tuple[Path, dict[str, int]]]:
    """`stanch dev` from the clean environment, the team's runbook bound first."""
    sample = next(machine.venv.glob("lib/python*/site-packages/stanch/examples/stanch.yaml"))
    policy = machine.home / "stanch.yaml"
    text = sample.read_text()
    assert text.count("\nrunbooks:\n") == 1
    policy.write_text(text.replace("\nrunbooks:\n", "\n" + BINDING, 1))
    state = machine.home / ".stanch"
    ports = {name: free_port() for name in ("http", "temporal", "ui", "sim", "metrics")}
    argv = [str(machine.venv / "bin" / "stanch"), "dev", "--state-dir", str(state)]
    for name in ports:
        argv += [f"--{name}-port", str(ports[name])]
    with (machine.home / "dev.log").open("w") as log:
        dev = subprocess.Popen(
            [*argv, "--config", str(policy)],
            cwd=machine.home,
            env=machine.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(signal.SIGTERM),  # never outlives a killed test run
        )

    def up() -> bool:
        assert dev.poll() is None, (machine.home / "dev.log").read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{ports['http']}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 120, "stanch dev from the wheel")
        yield state, ports
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
            dev.wait()


def test_a_team_package_from_scaffold_to_a_contained_alert(machine: TeamMachine, request):
    started = time.monotonic()
    package = machine.home.parent / "repos" / "payments-runbooks"
    created = machine.run("stanch", "runbook", "new", "disk_guard", "--package", str(package))
    assert created.returncode == 0, created.stderr
    assert (package / "tests" / "histories" / "disk_guard.json").is_file(), created.stderr
    pip_install(machine.venv, "-e", str(package))

    listed = machine.run("stanch", "runbook", "list")
    assert listed.returncode == 0, listed.stderr
    assert "from payments-runbooks 0.1.0 (payments_runbooks.disk_guard" in listed.stdout

    tested = machine.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert "4 passed" in tested.stdout, tested.stdout[-2000:]  # 3 of the runbook, 1 replay

    state, ports = request.getfixturevalue("dev_stack")

    def stanch(*args: str) -> subprocess.CompletedProcess[str]:
        return machine.run("stanch", "--state-dir", str(state), *args)

    sent = stanch("alert", "send", str(DEMO_ALERT))
    assert sent.returncode == 0, sent.stderr
    incident = json.loads(sent.stdout)["incident_id"]
    wait_until(
        lambda: "APPROVAL NEEDED: 'apply'" in stanch("show", incident).stdout,
        60,
        "disk_guard at its gate",
    )
    approved = stanch("approve", incident, "apply", "--as", "carol")
    assert approved.returncode == 0, approved.stderr
    wait_until(lambda: "MITIGATED" in stanch("show", incident).stdout, 60, "a mitigated incident")

    ca = ssl.create_default_context(cafile=state / "azuresim-ca.pem")
    sim = f"https://localhost:{ports['sim']}"
    calls = httpx.get(f"{sim}/_admin/journal", verify=ca).json()["calls"]
    # Exactly the team runbook's one write (the alert names the VM in lower case).
    writes = [(c["method"], c["path"].lower()) for c in calls if c["mutation"]]
    tags = f"{VM1}/providers/Microsoft.Resources/tags/default".lower()
    assert writes == [("PATCH", tags)], writes
    resources = httpx.get(f"{sim}/_admin/state", verify=ca).json()["resources"]
    (vm,) = [r for r in resources if r["id"].lower() == VM1.lower()]
    assert vm["tags"]["stanch.runbook"] == "disk_guard"
    print(f"scaffold to mitigated incident: {time.monotonic() - started:.1f} s")
