"""Every runbook this installation has: stanch's own, those of installed
packages (`stanch.runbooks` entry points) and of the policy's
`runbook_packages:` (runbooks/discovery.py finds them). The worker registers
them, the response plan matches alerts against their specs, `stanch runbook
list` shows them with the package and version each came from."""

from __future__ import annotations

from collections.abc import Sequence

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
    source will not load or two runbooks share a name. Not cached: modules
    import once per process anyway, and reading the entry points again (a few
    milliseconds) sees a package installed since."""
    return discover(packages)


def runbook_workflows(packages: Sequence[str] = ()) -> list[type[Runbook]]:
    return [r.workflow for r in loaded_runbooks(packages)]


def catalog(packages: Sequence[str] = ()) -> dict[str, RunbookSpec]:
    return {r.spec.name: r.spec for r in loaded_runbooks(packages)}
