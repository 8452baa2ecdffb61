"""Incident ids and workflow ids, both ways: every caller that turns one into
the other goes through stanch.client.ids."""

from __future__ import annotations

import pytest

from stanch.client.ids import as_incident_id, incident_id_of, workflow_id_for


@pytest.mark.parametrize(
    "incident_id", ["0123456789abcdef0123", "a", "with-dashes-inside", "incident-nested"]
)
def test_the_inverse_gives_back_the_incident(incident_id: str):
    assert incident_id_of(workflow_id_for(incident_id)) == incident_id
    assert as_incident_id(workflow_id_for(incident_id)) == incident_id


def test_a_runbook_started_by_an_incident_belongs_to_it():
    assert incident_id_of("incident-abc/quarantine") == "abc"
    assert incident_id_of("incident-abc/release") == "abc"


@pytest.mark.parametrize("workflow_id", ["stanch-detector-cpu-2026", "runbook-abc", "abc", ""])
def test_a_workflow_of_no_incident_has_none(workflow_id: str):
    assert incident_id_of(workflow_id) is None


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("abc", "abc"),
        ("  abc\n", "abc"),
        ("incident-abc", "abc"),
        (" incident-abc ", "abc"),
        ("incident-", ""),  # nothing after the prefix: the caller says "empty"
        ("", ""),
    ],
)
def test_what_a_person_types_is_read_as_an_incident_id(typed: str, meant: str):
    assert as_incident_id(typed) == meant
