"""Is a change inside `remediation.scopes`? The decision, with no I/O.

The alert chooses the resource a runbook acts on (its `alertTargetIDs`), so
whoever holds the intake token would choose it. The policy's scopes bound what
any runbook may change: a subscription, its resource groups (names or globs,
case-insensitive as Azure compares them), and optionally tags the resource
must carry. Anything that does not plainly fall inside is refused: no scopes,
an id that is not a plain ARM id, a change to a whole subscription, a group not
listed, tags missing or unreadable.

Tags are the one part that needs a read: `tags_needed` says when; the runbook
kit reads them (a read-only step) and passes them to `scope_refusal`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any

from stanch.models.azure import ResourceId
from stanch.models.config import RemediationScope

NO_SCOPES = (
    "remediation.scopes is empty: no runbook may change anything "
    "(dry runs and observations still run)"
)
# Dot segments, encoded characters, queries or fragments could make the URL an
# SDK requests differ from the id checked here.
_UNPLAIN = re.compile(r"[?#%\\]|(^|/)\.{1,2}(/|$)|//")


def placement(resource_id: str) -> tuple[str, str | None] | None:
    """(subscription, resource group) of a plain ARM id, the group None for the
    subscription itself and its own resources; None for anything else."""
    if _UNPLAIN.search(resource_id.strip().rstrip("/")):
        return None
    parts = [p for p in resource_id.strip().split("/") if p]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        return None
    if len(parts) < 4 or parts[2].lower() != "resourcegroups":
        return parts[1], None  # the subscription itself, or one of its own resources
    return parts[1], parts[3]


def covering(resource_id: str, scopes: list[RemediationScope]) -> list[RemediationScope]:
    """The scopes whose subscription and resource groups hold `resource_id`."""
    where = placement(resource_id)
    if where is None or where[1] is None:
        return []
    subscription, group = where[0].lower(), where[1].lower()
    return [
        s
        for s in scopes
        if s.subscription.lower() == subscription
        and any(fnmatch.fnmatchcase(group, pattern.lower()) for pattern in s.resource_groups)
    ]


def tags_needed(resource_id: str, scopes: list[RemediationScope]) -> bool:
    """True when only a scope that requires tags could admit `resource_id`, and
    it is a resource whose tags can be read."""
    matching = covering(resource_id, scopes)
    if not matching or any(not s.tags for s in matching):
        return False
    try:
        ResourceId.parse(resource_id)
    except ValueError:
        return False  # a resource group itself: refused, its tags are not read
    return True


def scope_refusal(
    resource_id: str,
    scopes: list[RemediationScope],
    tags: Mapping[str, str] | None = None,
) -> str | None:
    """Why changing `resource_id` is refused, or None when a scope admits it.
    `tags`: the resource's tags when `tags_needed` asked for them."""
    if not scopes:
        return NO_SCOPES
    where = placement(resource_id)
    if where is None:
        return (
            f"{resource_id!r} is not a plain Azure resource id: remediation.scopes cannot admit it"
        )
    subscription, group = where
    if group is None:
        return (
            f"{resource_id} is not inside a resource group: remediation.scopes admits "
            "resource groups only"
        )
    matching = covering(resource_id, scopes)
    if not matching:
        return (
            f"{resource_id} is outside remediation.scopes "
            f"(resource group {group} of subscription {subscription} is not listed)"
        )
    if any(not s.tags for s in matching):
        return None
    wanted = " or ".join(_format_tags(s.tags) for s in matching)
    if tags is None:
        return (
            f"{resource_id}: remediation.scopes admits it only with tags {wanted}, "
            "and its tags could not be read"
        )
    held = {name.lower(): value for name, value in tags.items()}
    if any(all(held.get(n.lower()) == v for n, v in s.tags.items()) for s in matching):
        return None
    return (
        f"{resource_id} lacks the tags remediation.scopes requires in resource group "
        f"{group} ({wanted})"
    )


def named_resources(value: Any) -> list[str]:
    """Every ARM id in an activity's argument (as JSON), in order, each once:
    what the change touches."""
    found: dict[str, str] = {}

    def walk(item: Any) -> None:
        if isinstance(item, str) and item.strip().lower().startswith("/subscriptions/"):
            found.setdefault(item.strip().lower(), item.strip())
        elif isinstance(item, Mapping):
            for nested in item.values():
                walk(nested)
        elif isinstance(item, list | tuple):
            for nested in item:
                walk(nested)

    walk(value)
    return list(found.values())


def _format_tags(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(tags.items()))


def scope_warnings(scopes: list[RemediationScope]) -> list[str]:
    """What `stanch config check` points out: allowed, but worth a second look."""
    if not scopes:
        return [
            "remediation.scopes: none configured, so no runbook may change anything "
            "(dry runs and observations still run); list the subscriptions and resource "
            "groups runbooks may change"
        ]
    return [
        f"remediation.scopes[{i}].resource_groups[{j}]: {pattern!r} admits every resource "
        f"group of subscription {scope.subscription}"
        for i, scope in enumerate(scopes)
        for j, pattern in enumerate(scope.resource_groups)
        if pattern.strip("*") == ""
    ]
