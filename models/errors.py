"""Turning pydantic errors into lines a person can act on: `path: problem`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

# Tagged-union members appear in error paths (`channels[0].webhook.url`) but
# not in the file a person edits.
_UNION_TAGS = {"webhook", "file"}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def describe_validation_error(error: ValidationError) -> list[str]:
    problems = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if p not in _UNION_TAGS)
        problems.append(f"{_loc(loc)}: {err['msg']}")
    return problems
