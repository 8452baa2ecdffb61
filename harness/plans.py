"""The response plan tests and benchmarks page against: four people (carol and
dave hold the approver role), escalation tiers of the caller's choosing, and
every page written to one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROSTER: list[dict[str, Any]] = [
    {"id": "alice", "name": "Alice"},
    {"id": "bob", "name": "Bob"},
    {"id": "carol", "name": "Carol", "roles": ["approver"]},
    {"id": "dave", "name": "Dave", "roles": ["approver"]},
]


def response_plan(pages: Path, tiers: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A stanch.yaml as a dict: `tiers` of the default escalation policy
    (stopping after the last), pages to `pages`; `overrides` replace top-level keys."""
    plan: dict[str, Any] = {
        "roster": [dict(person) for person in ROSTER],
        "escalation_policies": {"default": {"tiers": tiers, "after_last_tier": "stop"}},
        "channels": [{"name": "pager", "type": "file", "path": str(pages)}],
        "incident": {"reopen_window": "30m"},
    }
    plan.update(overrides)
    return plan
