"""Finds every runbook in this package: the worker registers them, the response
plan matches alerts against their specs, `stanch runbook list` shows them."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from stanch import runbooks
from stanch.models.runbook import RunbookSpec
from stanch.workflows.runbook import Runbook

_SKIP = {"registry"}


def runbook_workflows() -> list[type[Runbook]]:
    found: dict[str, type[Runbook]] = {}
    for module in pkgutil.iter_modules(runbooks.__path__):
        if module.name in _SKIP or module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"stanch.runbooks.{module.name}")
        for value in vars(loaded).values():
            if _is_runbook(value):
                found[value.spec.name] = value
    return [found[name] for name in sorted(found)]


def catalog() -> dict[str, RunbookSpec]:
    return {cls.spec.name: cls.spec for cls in runbook_workflows()}


def _is_runbook(value: Any) -> bool:
    return (
        isinstance(value, type)
        and issubclass(value, Runbook)
        and value is not Runbook
        and hasattr(value, "__temporal_workflow_definition")
        and isinstance(getattr(value, "spec", None), RunbookSpec)
    )
