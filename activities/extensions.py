"""Activities from outside stanch: a team's runbook often needs a side effect
stanch does not ship (block an IP its own way, call its own API).

They come from the `stanch.activities` entry point group (a value
`pkg.module:factory`, called with an ActivityContext and returning activity
callables, or an `@activity.defn` function itself) and from the modules of the
policy's `runbook_packages:` that define `stanch_activities(context)`. The
worker registers them beside its own; two activities with one name would make
a runbook's call land on whichever registered last, so that is an error
naming both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from temporalio import activity

from stanch.activities.azure_clients import AzureClients
from stanch.models.config import ConfigError
from stanch.models.settings import Settings
from stanch.stores.evidence import EvidenceKeeper

GROUP = "stanch.activities"
FACTORY = "stanch_activities"  # a runbook_packages module's activities, if it has them
Activity = Callable[..., Any]


@dataclass(frozen=True)
class ActivityContext:
    """What a team's activities may build on: the worker's Azure clients (one
    set per worker, closed with it), its settings and its evidence store."""

    azure: AzureClients
    settings: Settings
    evidence: EvidenceKeeper


@dataclass(frozen=True)
class LoadedActivity:
    function: Activity
    name: str
    origin: str  # "stanch", an entry point, runbook_packages[i]


class ActivityLoadError(ConfigError):
    """An activity source that cannot be used: will not import, or gives no activities."""


class ActivityConflict(ConfigError):
    """Two activities answer to one name."""


def activity_name(function: Activity) -> str:
    found = activity._Definition.from_callable(function)
    if found is None:
        raise TypeError(f"{function!r} is not an @activity.defn callable")
    return found.name or "(dynamic)"


def extension_activities(
    context: ActivityContext, packages: Sequence[str] = ()
) -> list[LoadedActivity]:
    """Entry points', then the policy modules'. ConfigError (ActivityLoadError)
    naming the source when one fails."""
    found: list[LoadedActivity] = []
    called: set[int] = set()  # a factory reached twice (entry point and policy) runs once
    for entry in metadata.entry_points(group=GROUP):
        dist = entry.dist
        origin = f"entry point {GROUP}: {entry.name} = {entry.value}" + (
            f" ({dist.name} {dist.version})" if dist is not None else ""
        )
        try:
            value = entry.load()
        except Exception as e:
            raise ActivityLoadError("activities", [f"{origin}: {_failure(e)}"]) from e
        found += _from_value(value, context, origin, called)
    for i, name in enumerate(packages):
        origin = f"runbook_packages[{i}] ({name}.{FACTORY})"
        try:
            module = importlib.import_module(name)
        except Exception as e:
            raise ActivityLoadError(
                "activities", [f"runbook_packages[{i}]: cannot import {name!r}: {_failure(e)}"]
            ) from e
        factory = getattr(module, FACTORY, None)
        if factory is not None:
            found += _from_value(factory, context, origin, called)
    return found


def _from_value(
    value: Any, context: ActivityContext, origin: str, called: set[int]
) -> list[LoadedActivity]:
    if not callable(value):
        raise ActivityLoadError("activities", [f"{origin}: not callable"])
    if activity._Definition.from_callable(value) is not None:
        functions: Iterable[Any] = [value]
    elif id(value) in called:
        return []
    else:
        called.add(id(value))
        try:
            functions = list(value(context))
        except Exception as e:
            raise ActivityLoadError("activities", [f"{origin}: {_failure(e)}"]) from e
    loaded = []
    for function in functions:
        if not callable(function) or activity._Definition.from_callable(function) is None:
            raise ActivityLoadError(
                "activities", [f"{origin}: {function!r} is not an @activity.defn callable"]
            )
        loaded.append(LoadedActivity(function, activity_name(function), origin))
    return loaded


def registrable(own: Iterable[Activity], extensions: Iterable[LoadedActivity]) -> list[Activity]:
    """stanch's activities and the extensions', each once; ActivityConflict
    when two different callables share a name."""
    everything = [LoadedActivity(f, activity_name(f), "stanch") for f in own]
    everything += extensions
    by_name: dict[str, LoadedActivity] = {}
    for candidate in everything:
        kept = by_name.setdefault(candidate.name, candidate)
        if kept.function != candidate.function:  # a bound method compares by function and self
            raise ActivityConflict(
                "activities",
                [
                    f"activity {candidate.name!r} is defined twice: by {kept.origin} "
                    f"({_qualname(kept.function)}) and by {candidate.origin} "
                    f"({_qualname(candidate.function)}); rename one (@activity.defn(name=...))"
                ],
            )
    return [entry.function for entry in by_name.values()]


def _qualname(function: Activity) -> str:
    module = getattr(function, "__module__", "?")
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


def _failure(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
