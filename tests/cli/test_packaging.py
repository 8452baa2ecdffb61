"""The wheel as a user gets it: built from this checkout, installed into a
clean virtual environment outside the repository, it adds only `stanch` to the
import names, and `stanch --help`, `stanch config check` and `stanch dev` work
from an empty folder with what the wheel carries."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from stanch.harness.ports import free_port
from tests.support.packaging import (
    build_wheel,
    clean_venv_with,
    installed_top_level_names,
    user_env,
)


def test_pip_wheel_builds_with_and_without_build_isolation(tmp_path):
    assert build_wheel(tmp_path / "isolated", isolated=True).name.startswith("stanch-")
    assert build_wheel(tmp_path / "local", isolated=False).name.startswith("stanch-")


def test_the_installed_wheel_adds_only_stanch_and_runs_from_any_folder(tmp_path, built_wheel):
    venv = clean_venv_with(built_wheel, tmp_path)
    assert installed_top_level_names(venv) == {"stanch"}
    elsewhere = tmp_path / "a-team-repo"
    (elsewhere / "models").mkdir(parents=True)  # a team's own `models`, as in the trial
    (elsewhere / "models" / "__init__.py").write_text("raise ImportError('not stanch')\n")
    env = user_env(venv)
    stanch = str(venv / "bin" / "stanch")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [stanch, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
        )

    helped = run("--help")
    assert helped.returncode == 0 and "dev" in helped.stdout, helped.stderr
    checked = run("config", "check")
    assert checked.returncode == 0, checked.stderr
    packaged = venv.glob("lib/python*/site-packages/stanch/examples/stanch.yaml")
    assert str(next(packaged)) in checked.stdout, checked.stdout
    imported = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import stanch.worker, stanch.models; print(stanch.models.__file__)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0 and "site-packages/stanch/models" in imported.stdout, imported

    http, temporal, ui, sim, metrics = (free_port() for _ in range(5))
    dev = subprocess.Popen(
        [
            stanch,
            "dev",
            "--state-dir",
            str(elsewhere / ".stanch"),
            "--http-port",
            str(http),
            "--temporal-port",
            str(temporal),
            "--ui-port",
            str(ui),
            "--sim-port",
            str(sim),
            "--metrics-port",
            str(metrics),
        ],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        healthy = False
        while time.monotonic() < deadline and dev.poll() is None:
            try:
                healthy = (
                    httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=2).status_code == 200
                )
            except httpx.HTTPError:
                pass
            if healthy:
                break
            time.sleep(0.5)
        assert healthy, "stanch dev from the wheel never answered /healthz"
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            output, _ = dev.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
            output, _ = dev.communicate()
    assert "using a copy of the sample policy" in output, output[-3000:]
    assert dev.returncode == 0, output[-3000:]
