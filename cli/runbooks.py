"""`stanch runbook new`: a start on a new runbook, in a team's own package
(`--package DIR`, anywhere) or in stanch's tree (from the project root)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from stanch.cli import runbook_templates as rt
from stanch.cli import team_package_templates as tpt
from stanch.cli.errors import UsageError

NAME = r"[a-z][a-z0-9_]{1,40}"
MODULE = r"[a-z_][a-z0-9_]*"
RESERVED = ("registry", "discovery", "release")


def new_runbook(name: str, root: Path | None = None) -> list[Path]:
    """In stanch's own tree: runbooks/NAME.py and tests/runbooks/test_NAME.py."""
    root = root or Path.cwd()
    if not (root / "runbooks").is_dir() or not (root / "tests" / "runbooks").is_dir():
        raise UsageError(
            f"run this from the stanch project root (no runbooks/ and tests/runbooks/ in {root}),"
            " or give --package DIR for a package of your own"
        )
    _check_name(name)
    values = _names(name)
    # Tests mirror the tree: a runbook's test sits in tests/runbooks/.
    files = {
        root / "runbooks" / f"{name}.py": rt.render(rt.RUNBOOK, **values),
        root / "tests" / "runbooks" / f"test_{name}.py": rt.render(rt.IN_TREE_TEST, **values),
    }
    return _write_new(files)


def new_team_package(
    name: str,
    directory: Path,
    module: str | None = None,
    record: Callable[[str, Path, Path], Path | None] | None = None,
) -> list[Path]:
    """A package of the team's own in `directory` (made if missing; nothing in
    it is overwritten): pyproject.toml with the `stanch.runbooks` entry point,
    the runbook, its tests, a replay test, a CI example, a README. `record`
    (runbook name, package dir, histories dir) records the runbook's first
    history into the package's tests."""
    _check_name(name)
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--package: {directory} is not a directory")
    package = module or re.sub(r"[^a-z0-9_]", "_", directory.name.lower())
    if not re.fullmatch(MODULE, package) or package in ("stanch", "tests", "test"):
        raise UsageError(
            f"--module: {package!r} is not a module name a package may take "
            "(a-z, 0-9, _; not stanch or tests): give one with --module"
        )
    values = {
        **_names(name),
        "package": package,
        "dist": directory.name if re.fullmatch(r"[A-Za-z0-9._-]+", directory.name) else package,
        "stanch": _stanch_version(),
    }
    tests = directory / "tests"
    files = {
        directory / "pyproject.toml": tpt.PYPROJECT,
        directory / "README.md": tpt.README,
        directory / ".gitignore": tpt.GITIGNORE,
        directory / ".github" / "workflows" / "runbooks.yml": tpt.CI,
        directory / package / "__init__.py": tpt.PACKAGE_INIT,
        directory / package / f"{name}.py": rt.RUNBOOK,
        tests / "conftest.py": tpt.CONFTEST,
        tests / f"test_{name}.py": rt.TEAM_TEST,
        tests / "test_replay.py": tpt.REPLAY_TEST,
    }
    written = _write_new({path: rt.render(text, **values) for path, text in files.items()})
    if record is not None:
        history = record(f"{package}.{name}", directory, tests / "histories")
        if history is not None:
            written.append(history)
    return written


def scaffolded_runbook(module: str) -> list[type]:
    """The runbook classes of a module just written, not installed yet (its
    folder on sys.path: a worker's sandbox imports it again)."""
    loaded = importlib.import_module(module)
    return [
        value
        for value in vars(loaded).values()
        if isinstance(value, type) and value.__module__ == module and hasattr(value, "spec")
    ]


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME, name):
        raise UsageError(f"NAME: {name!r} must be snake_case (a-z, 0-9, _), starting with a letter")
    from stanch.runbooks.registry import catalog

    if name in catalog() or name in RESERVED:
        raise UsageError(f"NAME: a runbook named {name!r} already exists")


def _names(name: str) -> dict[str, str]:
    return {
        "name": name,
        "class": "".join(part.capitalize() for part in name.split("_")),
        "title": name.replace("_", " ").capitalize(),
    }


def _stanch_version() -> str:
    try:
        return metadata.version("stanch")
    except metadata.PackageNotFoundError:  # a checkout run without an install
        return "0.1.0"


def _write_new(files: dict[Path, str]) -> list[Path]:
    """All or nothing: an existing file is refused before anything is written."""
    for path in files:
        if path.exists():
            raise UsageError(f"{path} already exists: nothing was written")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
