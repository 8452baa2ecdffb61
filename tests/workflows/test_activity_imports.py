"""What workflows and runbooks take from activities/: activity definitions, nothing else.

The import contracts (`[tool.importlinter]` in pyproject.toml) allow each
workflow -> activities import by module, because a workflow names the activities
it runs by method reference. import-linter sees modules, not names, so a request
model imported beside the activity class (as `PostmortemRequest` once was) would
pass it unseen; it belongs in models/. This reads every such import by name."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import stanch

STANCH = Path(stanch.__file__).parent
REPLAYED_ROOMS = ("workflows", "runbooks")


def activity_imports() -> list[tuple[str, str, str]]:
    """(file, module, name) for each name a replayed room imports from activities/."""
    found = []
    for room in REPLAYED_ROOMS:
        for path in sorted((STANCH / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "stanch.activities"
                ):
                    where = f"{room}/{path.relative_to(STANCH / room)}"
                    found += [(where, node.module or "", alias.name) for alias in node.names]
    return found


def is_activity_definition(value: object) -> bool:
    """An @activity.defn function, or a class whose methods include one."""
    if hasattr(value, "__temporal_activity_definition"):
        return True
    return isinstance(value, type) and any(
        hasattr(member, "__temporal_activity_definition") for member in vars(value).values()
    )


IMPORTS = activity_imports()


def test_the_replayed_rooms_do_name_activities() -> None:
    # If the scan found nothing, the test below would pass for the wrong reason.
    assert {module for _, module, _ in IMPORTS} >= {
        "stanch.activities.notify",
        "stanch.activities.audit",
    }


@pytest.mark.parametrize(("where", "module", "name"), IMPORTS)
def test_only_activity_definitions_come_from_activities(where: str, module: str, name: str) -> None:
    value = getattr(importlib.import_module(module), name)
    assert is_activity_definition(value), (
        f"{where} imports {name} from {module}: a workflow takes only activity "
        f"definitions from activities/; a model it needs belongs in models/"
    )
