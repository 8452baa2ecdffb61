"""Fail when pyproject.toml asks for something requirements/dev.lock did not install.

`make` installs the lock and then stanch with --no-deps, so a dependency added to
pyproject.toml without `make lock` would otherwise go missing silently (pip check
does not look at extras). Run by the Makefile right after the install.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement


def unmet(extra: str) -> list[str]:
    problems = []
    for line in requires("stanch") or []:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        wanted = f"{req.name}{req.specifier}"
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            problems.append(f"{wanted}, which is not installed")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{wanted}, the lock installed {installed}")
    return problems


if __name__ == "__main__":
    problems = unmet("dev")
    for problem in problems:
        print(f"pyproject.toml asks for {problem}", file=sys.stderr)
    if problems:
        print("requirements/dev.lock is behind pyproject.toml: run `make lock`", file=sys.stderr)
    sys.exit(1 if problems else 0)
