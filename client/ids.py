"""Incident ids and the workflow ids that carry them, both ways. An incident id
is the alert fingerprint; its workflow is `incident-<id>`, and the workflows it
starts (runbooks) are `incident-<id>/<name>`."""

from __future__ import annotations

INCIDENT_PREFIX = "incident-"


def workflow_id_for(incident_id: str) -> str:
    return f"{INCIDENT_PREFIX}{incident_id}"


def incident_id_of(workflow_id: str) -> str | None:
    """The incident a workflow belongs to (the incident's own, or a runbook it
    started), or None for a workflow of no incident (a detector's)."""
    if not workflow_id.startswith(INCIDENT_PREFIX):
        return None
    return workflow_id.removeprefix(INCIDENT_PREFIX).split("/", 1)[0]


def as_incident_id(given: str) -> str:
    """What a person typed: an incident id, or its workflow id (both are shown)."""
    given = given.strip()
    found = incident_id_of(given)
    return given if found is None else found
