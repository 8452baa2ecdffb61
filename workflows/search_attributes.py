"""Typed search attributes: how incidents are listed without a second database.
Names and kinds match models.settings.SEARCH_ATTRIBUTES, which `stanch dev`
registers."""

from __future__ import annotations

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
