"""Where runbooks come from: stanch's own, installed packages (the
`stanch.runbooks` entry point group) and the modules the policy names
(`runbook_packages:`), each with the package and version it came from.

An incident must never run a runbook nobody chose, so nothing here guesses: a
module that will not import, a value that is not a runbook, or one name taken
by two runbooks is a configuration error naming where each came from.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

from stanch.models.config import ConfigError
from stanch.models.runbook import RunbookSpec
from stanch.workflows.runbook import Runbook

GROUP = "stanch.runbooks"
BUILT_IN = "stanch"
_NOT_RUNBOOKS = {"registry", "discovery"}  # stanch.runbooks modules that hold no runbook


@dataclass(frozen=True)
class LoadedRunbook:
    workflow: type[Runbook]
    spec: RunbookSpec
    package: str  # the distribution that ships it ("stanch" for the built-ins)
    version: str
    source: str  # the module that defines it
    origin: str  # how it was found: "built-in", an entry point, runbook_packages[i]


class RunbookConflict(ConfigError):
    """Two runbooks answer to one name: which one an alert runs would be luck."""


class RunbookLoadError(ConfigError):
    """A runbook source that cannot be used (will not import, or is no runbook)."""


def discover(packages: Sequence[str] = ()) -> list[LoadedRunbook]:
    """Built-ins, then entry points, then the policy's modules, sorted by name."""
    found: dict[str, LoadedRunbook] = {}
    for candidate in [*_built_in(), *_entry_points(), *_policy_modules(packages)]:
        kept = found.setdefault(candidate.spec.name, candidate)
        if kept.workflow is not candidate.workflow:  # the same class found twice is one runbook
            raise RunbookConflict("runbooks", [_conflict(kept, candidate)])
    return [found[name] for name in sorted(found)]


def _conflict(first: LoadedRunbook, second: LoadedRunbook) -> str:
    def where(r: LoadedRunbook) -> str:
        return f"{r.package} {r.version} ({r.source}.{r.workflow.__qualname__}, {r.origin})"

    return (
        f"runbook {first.spec.name!r} is defined twice: by {where(first)} and by "
        f"{where(second)}; rename one (its spec.name and workflow name) or uninstall one"
    )


def _built_in() -> Iterator[LoadedRunbook]:
    from stanch import runbooks

    version = _version(BUILT_IN)
    for info in pkgutil.iter_modules(runbooks.__path__):
        if info.name in _NOT_RUNBOOKS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"stanch.runbooks.{info.name}")
        for cls in _defined_in(module):
            yield LoadedRunbook(cls, cls.spec, BUILT_IN, version, module.__name__, "built-in")


def _entry_points() -> Iterator[LoadedRunbook]:
    for entry in metadata.entry_points(group=GROUP):
        dist = entry.dist
        package = dist.name if dist is not None else _distribution_of(entry.module)
        version = dist.version if dist is not None else _version(package)
        origin = f"entry point {GROUP}: {entry.name} = {entry.value}"
        try:
            value = entry.load()
        except Exception as e:
            raise RunbookLoadError(
                "runbooks", [f"{origin} ({package} {version}): {_failure(e)}"]
            ) from e
        if isinstance(value, ModuleType):
            classes = list(_defined_in_tree(value))
        elif _is_runbook(value):
            classes = [value]
        else:
            raise RunbookLoadError(
                "runbooks",
                [f"{origin} ({package} {version}): neither a module nor a runbook class"],
            )
        for cls in classes:
            yield LoadedRunbook(cls, cls.spec, package, version, cls.__module__, origin)


def _policy_modules(packages: Sequence[str]) -> Iterator[LoadedRunbook]:
    for i, name in enumerate(packages):
        origin = f"runbook_packages[{i}]"
        module = import_policy_module(name, origin)
        package = _distribution_of(name)
        version = _version(package)
        for cls in _defined_in_tree(module):
            yield LoadedRunbook(cls, cls.spec, package, version, cls.__module__, origin)


def import_policy_module(name: str, origin: str) -> ModuleType:
    """A module the policy names; RunbookLoadError at `origin` when it will not import."""
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise RunbookLoadError(
            "runbooks", [f"{origin}: cannot import {name!r}: {_failure(e)}"]
        ) from e


def _defined_in_tree(module: ModuleType) -> Iterator[type[Runbook]]:
    """A module's runbooks; a package's, and those of every module below it."""
    yield from _defined_in(module)
    path = getattr(module, "__path__", None)
    if path is None:
        return
    for info in pkgutil.walk_packages(path, prefix=f"{module.__name__}."):
        try:
            sub = importlib.import_module(info.name)
        except Exception as e:
            raise RunbookLoadError(
                "runbooks", [f"{module.__name__}: cannot import {info.name!r}: {_failure(e)}"]
            ) from e
        yield from _defined_in(sub)


def _defined_in(module: ModuleType) -> Iterator[type[Runbook]]:
    # Only classes defined here: a module that imports another's runbook
    # (to subclass it, or in a test) does not ship it a second time.
    for value in vars(module).values():
        if _is_runbook(value) and value.__module__ == module.__name__:
            yield value


def _is_runbook(value: Any) -> bool:
    return (
        isinstance(value, type)
        and issubclass(value, Runbook)
        and value is not Runbook
        and hasattr(value, "__temporal_workflow_definition")
        and isinstance(getattr(value, "spec", None), RunbookSpec)
    )


def _failure(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _distribution_of(module: str) -> str:
    """The installed distribution holding a module; a folder on sys.path that
    no installer put there has none."""
    top = module.split(".")[0]
    if top == BUILT_IN:
        return BUILT_IN
    # Read each time (about 0.1 s, only for runbook_packages): a package
    # installed while the process runs is named correctly.
    names = metadata.packages_distributions().get(top, [])
    return names[0] if names else "(not installed)"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except (metadata.PackageNotFoundError, ValueError):
        return "(unknown)"
