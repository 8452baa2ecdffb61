"""`stanch runbook new NAME --package DIR`: a team package anywhere, with the
entry point stanch finds it by, tests, a recorded history that replays, a CI
example and a README, ruff-clean as written; nothing is ever overwritten.
(tests/cli/test_team_package.py installs one and runs its tests.)"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from stanch.cli import runbook_templates as rt
from tests.support.cli import run_stanch

ROOT = Path(__file__).resolve().parents[2]


def stanch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No stack: the state dir only keeps the command from reading this run's.
    return run_stanch(cwd.parent / "no-stack", cwd, *args)


def ruff(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        env={**os.environ, "RUFF_NO_CACHE": "true"},
    )


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scaffold (it records a history: a few seconds) for the tests that read it."""
    directory = tmp_path_factory.mktemp("repos") / "payments-runbooks"
    created = stanch("runbook", "new", "disk_guard", "--package", str(directory), cwd=ROOT)
    assert created.returncode == 0, created.stderr
    return directory


def test_the_package_has_everything_a_team_needs(package: Path):
    assert sorted(files_under(package)) == [
        ".github/workflows/runbooks.yml",
        ".gitignore",
        "README.md",
        "payments_runbooks/__init__.py",
        "payments_runbooks/disk_guard.py",
        "pyproject.toml",
        "tests/conftest.py",
        "tests/histories/disk_guard.json",
        "tests/test_disk_guard.py",
        "tests/test_replay.py",
    ]
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["name"] == "payments-runbooks"
    assert project["project"]["dependencies"] == [f"stanch>={metadata.version('stanch')}"]
    entry_points = project["project"]["entry-points"]["stanch.runbooks"]
    assert entry_points == {"disk_guard": "payments_runbooks.disk_guard"}
    options = project["tool"]["pytest"]["ini_options"]
    assert options["asyncio_default_test_loop_scope"] == "session"
    ci = (package / ".github/workflows/runbooks.yml").read_text()
    assert "pytest -q" in ci and "stanch runbook check" in ci and "ruff format --check" in ci
    readme = (package / "README.md").read_text()
    assert "stanch runbook record disk_guard --to tests/histories" in readme
    # The runbook uses stanch's public kit only.
    runbook = (package / "payments_runbooks/disk_guard.py").read_text()
    imported = [line.split()[1] for line in runbook.splitlines() if "import" in line.split()[:3]]
    assert all(
        m.startswith(("stanch.activities.", "stanch.models.", "stanch.workflows.runbook"))
        for m in imported
        if m.startswith("stanch")
    ), imported


def test_the_package_is_ruff_clean_as_written(package: Path):
    # Its own ruff settings (pyproject.toml), from its own folder.
    checked = ruff("check", ".", cwd=package)
    assert checked.returncode == 0, checked.stdout
    formatted = ruff("format", "--check", ".", cwd=package)
    assert formatted.returncode == 0, formatted.stdout


async def test_its_recorded_history_replays_against_the_runbook(package: Path):
    from stanch.testing import replay_history

    sys.path.insert(0, str(package))
    try:
        from payments_runbooks.disk_guard import DiskGuard  # type: ignore[import-not-found]

        await replay_history(package / "tests/histories/disk_guard.json", [DiskGuard])
    finally:
        sys.path.remove(str(package))


def test_nothing_is_overwritten_and_bad_input_is_refused(package: Path, tmp_path: Path):
    before = files_under(package)
    again = stanch("runbook", "new", "disk_guard", "--package", str(package), cwd=tmp_path)
    assert again.returncode == 2 and "already exists: nothing was written" in again.stderr
    assert files_under(package) == before

    for args, problem in [
        (["Disk-Guard", "--package", "x"], "NAME: 'Disk-Guard' must be snake_case"),
        (["quarantine_vm", "--package", "x"], "NAME: a runbook named 'quarantine_vm'"),
        (["disk_guard", "--package", "x", "--module", "9lives"], "--module: '9lives'"),
        (["disk_guard", "--package", "stanch"], "--module: 'stanch'"),
    ]:
        refused = stanch("runbook", "new", *args, cwd=tmp_path)
        assert refused.returncode == 2 and problem in refused.stderr, (args, refused.stderr)
    (tmp_path / "a-file").write_text("")
    refused = stanch("runbook", "new", "disk_guard", "--package", "a-file", cwd=tmp_path)
    assert refused.returncode == 2 and "is not a directory" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_outside_a_checkout_without_package_the_hint_names_it(tmp_path: Path):
    refused = stanch("runbook", "new", "disk_guard", cwd=tmp_path)
    assert refused.returncode == 2 and "--package DIR" in refused.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("template", "where"),
    [
        (rt.RUNBOOK, "runbooks/disk_guard.py"),
        (rt.IN_TREE_TEST, "tests/runbooks/test_disk_guard.py"),
    ],
)
def test_the_in_tree_files_are_ruff_clean_under_stanchs_settings(template: str, where: str):
    text = rt.render(template, name="disk_guard", **{"class": "DiskGuard"}, title="Disk guard")
    checked = ruff("check", "--stdin-filename", where, "-", cwd=ROOT, stdin=text)
    assert checked.returncode == 0, checked.stdout
    formatted = ruff("format", "--check", "--stdin-filename", where, "-", cwd=ROOT, stdin=text)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
