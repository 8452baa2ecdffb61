"""`stanch runbook list | new`: a scaffolded runbook is registered, and its own
generated test passes, in a copy of the project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stanch(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_runbook_list():
    listed = json.loads(stanch("runbook", "list", "--json").stdout)
    names = {r["name"]: r for r in listed}
    assert {"quarantine_vm", "restart_vm", "verify_recovery", "release"} <= set(names)
    assert names["quarantine_vm"]["approvals"] == {"isolate": "high"}


def test_runbook_new_scaffolds_a_runbook_whose_test_passes(tmp_path: Path):
    tracked = subprocess.run(
        ["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    copy = tmp_path / "project"
    for name in tracked:
        source, target = ROOT / name, copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            # stanch/<room> -> ../<room>: the copy's `stanch` must be the copy's
            # rooms, or its new runbook would be written where nothing imports it.
            target.symlink_to(source.readlink())
        elif source.is_file():
            shutil.copy2(source, target)

    created = stanch("runbook", "new", "disk_guard", cwd=copy)
    assert created.returncode == 0, created.stderr
    assert (copy / "runbooks" / "disk_guard.py").exists()
    assert (copy / "tests" / "runbooks" / "test_disk_guard.py").exists()
    assert "disk_guard" in stanch("runbook", "list", cwd=copy).stdout

    again = stanch("runbook", "new", "disk_guard", cwd=copy)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = stanch("runbook", "new", "Disk-Guard", cwd=copy)
    assert bad.returncode == 2 and "snake_case" in bad.stderr

    lint = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "runbooks/disk_guard.py",
            "tests/runbooks/test_disk_guard.py",
        ],
        capture_output=True,
        text=True,
        cwd=copy,
    )
    assert lint.returncode == 0, lint.stdout
    tested = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/runbooks/test_disk_guard.py",
        ],
        capture_output=True,
        text=True,
        cwd=copy,
        timeout=300,
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert "2 passed" in tested.stdout


def test_toggle_without_a_stack_writes_nothing(tmp_path: Path):
    """`stanch toggle` goes through the admin API (tests/cli/test_cli_identity.py
    flips the switch that way); with no stack, a typo and a declared name are
    both refused before anything is written."""
    import os

    from stanch.stores.toggles import ToggleStore

    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env.update(STANCH_STATE_DIR=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))

    def toggle(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stanch.cli.main", "toggle", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60,
        )

    bad = toggle("remediation", "maybe", "--as", "dave")
    assert bad.returncode == 2 and "remediation: 'maybe'" in bad.stderr
    declared = toggle("remediation", "off", "--runbook", "quarantine_vm", "--as", "dave")
    assert declared.returncode == 2 and "STANCH_API_TOKEN" in declared.stderr
    assert not (tmp_path / "toggles.json").exists()
    assert ToggleStore(tmp_path / "toggles.json").allowed("quarantine_vm").allowed
    assert not (tmp_path / "audit.db").exists()
