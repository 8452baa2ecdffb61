"""Typed search attributes: how incidents are listed without a second database.
The incident workflow sets them, the client room lists by them, and
SEARCH_ATTRIBUTES (derived from the keys) is what a server must have registered
(`stanch dev`, the tests and `temporal operator search-attribute create`).

Imports nothing of the rest of the client room: the incident workflow imports
these keys too."""

from __future__ import annotations

import json
from typing import Any

from temporalio.common import SearchAttributeKey

INCIDENT_STATUS = SearchAttributeKey.for_keyword("IncidentStatus")
INCIDENT_SEVERITY = SearchAttributeKey.for_keyword("IncidentSeverity")
INCIDENT_SERVICE = SearchAttributeKey.for_keyword("IncidentService")
INCIDENT_RESOURCES = SearchAttributeKey.for_keyword_list("IncidentResources")

ALL: list[SearchAttributeKey[Any]] = [
    INCIDENT_STATUS,
    INCIDENT_SEVERITY,
    INCIDENT_SERVICE,
    INCIDENT_RESOURCES,
]


def registered_kind(key: SearchAttributeKey[Any]) -> str:
    """The type name the Temporal CLI takes (`--search-attribute NAME=KeywordList`)."""
    return key.indexed_value_type.name.title().replace("_", "")


# {name: kind}, as `temporal server start-dev --search-attribute` wants them.
SEARCH_ATTRIBUTES = {key.name: registered_kind(key) for key in ALL}

# Temporal refuses a keyword-list value whose JSON is over 2048 bytes, which
# about 13 Azure VM ids reach: the listing gets the ids that fit, the incident's
# state keeps them all.
RESOURCES_VALUE_BYTES = 2000
RESOURCE_ID_CHARS = 512


def searchable_resources(resource_ids: list[str]) -> list[str]:
    """The first resource ids that fit the IncidentResources search attribute,
    each cut to a bounded length. Unchanged for any list that already fits,
    so workflows that upserted a full list replay the same command."""
    kept: list[str] = []
    size = 2  # the JSON brackets
    for resource_id in resource_ids:
        item = resource_id[:RESOURCE_ID_CHARS]
        cost = len(json.dumps(item).encode()) + (1 if kept else 0)
        if size + cost > RESOURCES_VALUE_BYTES:
            break
        kept.append(item)
        size += cost
    return kept
