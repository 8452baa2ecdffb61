"""Every runbook this installation has: stanch's own, those of installed
packages (`stanch.runbooks` entry points) and of the policy's
`runbook_packages:` (runbooks/discovery.py finds them). The worker registers
them, the response plan matches alerts against their specs, `stanch runbook
list` shows them with the package and version each came from."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from stanch.models.runbook import RunbookSpec
from stanch.runbooks.discovery import (
    LoadedRunbook,
    RunbookConflict,
    RunbookLoadError,
    discover,
)
from stanch.workflows.runbook import Runbook

__all__ = [
    "LoadedRunbook",
    "RunbookConflict",
    "RunbookLoadError",
    "catalog",
    "loaded_runbooks",
    "runbook_workflows",
]


def loaded_runbooks(packages: Sequence[str] = ()) -> list[LoadedRunbook]:
    """Sorted by name. ConfigError (RunbookConflict, RunbookLoadError) when a
    source will not load or two runbooks share a name."""
    return list(_loaded(tuple(packages)))


@cache
def _loaded(packages: tuple[str, ...]) -> tuple[LoadedRunbook, ...]:
    # Imports are once per process anyway; this spares re-reading every
    # installed distribution's entry points on each call.
    return tuple(discover(packages))


def runbook_workflows(packages: Sequence[str] = ()) -> list[type[Runbook]]:
    return [r.workflow for r in loaded_runbooks(packages)]


def catalog(packages: Sequence[str] = ()) -> dict[str, RunbookSpec]:
    return {r.spec.name: r.spec for r in loaded_runbooks(packages)}
