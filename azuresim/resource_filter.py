"""The `$filter` of ARM's resource listings (`GET /subscriptions/{id}/resources`,
`.../resourceGroups/{rg}/resources`), as Resources_List documents it:

- `eq` / `ne` on `resourceType`, `name`, `location`, `resourceGroup`;
- `substringof('x', name)` / `substringof('x', resourceGroup)`;
- `tagName eq 'n'`, `tagName eq 'n' and tagValue eq 'v'`, `startswith(tagName, 'p')`;
- clauses joined by `and` / `or` — but a tag filter stands alone, as on Azure
  (tags "cannot be combined with other filters"), and a listing filtered by tag
  omits the resources' tags.

Anything else is Azure's `400 InvalidFilterInQueryString`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stanch.azuresim.errors import ArmError

Item = dict[str, Any]  # a listed resource, with `resourceGroup` for matching
Predicate = Callable[[Item], bool]

_STRING = r"'((?:[^']|'')*)'"
_COMPARISON = re.compile(
    rf"^(resourceType|name|location|resourceGroup|tagName|tagValue)\s+(eq|ne)\s+{_STRING}$",
    re.IGNORECASE,
)
_SUBSTRINGOF = re.compile(rf"^substringof\(\s*{_STRING}\s*,\s*(name|resourceGroup)\s*\)$", re.I)
_STARTSWITH = re.compile(rf"^startswith\(\s*tagName\s*,\s*{_STRING}\s*\)$", re.IGNORECASE)
_JOINER = re.compile(r"\s+(and|or)\s+(?=(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)


@dataclass
class ResourceFilter:
    matches: Predicate
    by_tag: bool  # Azure leaves tags out of a listing filtered by tag


def parse(text: str | None) -> ResourceFilter:
    if text is None or not text.strip():
        return ResourceFilter(lambda _: True, by_tag=False)
    parts = _JOINER.split(text.strip())
    clauses, joiners = parts[0::2], [j.lower() for j in parts[1::2]]
    tag = _tag_filter(text, clauses, joiners)
    if tag is not None:
        return ResourceFilter(tag, by_tag=True)
    predicates = [_clause(text, c) for c in clauses]

    def matches(item: Item) -> bool:
        # `and` binds tighter than `or`, as in OData.
        groups: list[list[Predicate]] = [[predicates[0]]]
        for joiner, predicate in zip(joiners, predicates[1:], strict=True):
            if joiner == "and":
                groups[-1].append(predicate)
            else:
                groups.append([predicate])
        return any(all(p(item) for p in group) for group in groups)

    return ResourceFilter(matches, by_tag=False)


def _tag_filter(text: str, clauses: list[str], joiners: list[str]) -> Predicate | None:
    if not any(re.match(r"^(startswith\(\s*)?tag(name|value)\b", c, re.I) for c in clauses):
        return None
    if len(clauses) == 1 and (prefix := _STARTSWITH.match(clauses[0])):
        start = _unquote(prefix.group(1)).lower()
        return lambda item: any(k.lower().startswith(start) for k in item.get("tags") or {})
    comparisons = [_COMPARISON.match(c) for c in clauses]
    shape = [(m.group(1).lower(), m.group(2).lower()) if m else None for m in comparisons]
    if shape == [("tagname", "eq")]:
        name = _unquote(comparisons[0].group(3)).lower()  # type: ignore[union-attr]
        return lambda item: any(k.lower() == name for k in item.get("tags") or {})
    if shape == [("tagname", "eq"), ("tagvalue", "eq")] and joiners == ["and"]:
        name = _unquote(comparisons[0].group(3)).lower()  # type: ignore[union-attr]
        value = _unquote(comparisons[1].group(3))  # type: ignore[union-attr]
        return lambda item: any(
            k.lower() == name and v == value for k, v in (item.get("tags") or {}).items()
        )
    raise _invalid(
        text,
        "a tag filter is `tagName eq 'n'`, `tagName eq 'n' and tagValue eq 'v'` or "
        "`startswith(tagName, 'p')`, and cannot be combined with other filters",
    )


def _clause(text: str, clause: str) -> Predicate:
    if comparison := _COMPARISON.match(clause):
        field, op, raw = comparison.group(1), comparison.group(2).lower(), comparison.group(3)
        key, value = _FIELDS[field.lower()], _unquote(raw).lower()
        if op == "eq":
            return lambda item: str(item.get(key) or "").lower() == value
        return lambda item: str(item.get(key) or "").lower() != value
    if substring := _SUBSTRINGOF.match(clause):
        needle, key = _unquote(substring.group(1)).lower(), _FIELDS[substring.group(2).lower()]
        return lambda item: needle in str(item.get(key) or "").lower()
    raise _invalid(text, f"'{clause}' is not a supported filter expression")


_FIELDS = {
    "resourcetype": "type",
    "name": "name",
    "location": "location",
    "resourcegroup": "resourceGroup",
}


def _unquote(raw: str) -> str:
    return raw.replace("''", "'")


def _invalid(text: str, why: str) -> ArmError:
    return ArmError(
        400,
        "InvalidFilterInQueryString",
        f"Invalid $filter '{text}' specified in the query string: {why}.",
    )
