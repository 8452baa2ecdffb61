"""A log alert's dimensions reach the incident (and a runbook like block_ip),
bounded like all free text that enters from outside."""

from __future__ import annotations

import json
from typing import Any

from stanch.models.alert import (
    DIMENSION_VALUE_LIMIT,
    DIMENSIONS_KEPT,
    AlertEvent,
    CommonAlert,
    MonitorCondition,
)
from stanch.testing.estate import SAMPLES


def with_dimensions(*criteria: list[Any]) -> CommonAlert:
    body = json.loads((SAMPLES / "block_ip_log_alert_v2.json").read_text())
    template = body["data"]["alertContext"]["condition"]["allOf"][0]
    body["data"]["alertContext"]["condition"]["allOf"] = [
        {**template, "dimensions": dims} for dims in criteria
    ]
    return CommonAlert.model_validate(body)


def test_the_log_alert_sample_carries_its_client_ip():
    alert = CommonAlert.model_validate_json((SAMPLES / "block_ip_log_alert_v2.json").read_text())
    assert alert.to_event().dimensions["ClientIP"] == "203.0.113.7"
    microsoft = CommonAlert.model_validate_json(
        (SAMPLES / "test_action_log_alert_v2.json").read_text()
    )
    assert microsoft.to_event().dimensions == {"Computer": "test-computer"}


def test_first_value_of_each_name_across_criteria_and_odd_entries_skipped():
    alert = with_dimensions(
        [{"name": "ClientIP", "value": "203.0.113.7"}, {"name": "Port", "value": 22}],
        [{"name": "ClientIP", "value": "198.51.100.1"}, {"value": "no name"}, {"name": "x"}],
    )
    assert alert.to_event().dimensions == {"ClientIP": "203.0.113.7", "Port": "22"}


def test_dimensions_are_bounded_at_the_gateway_and_from_any_client():
    many = [{"name": f"d{i}", "value": "v" * 10_000} for i in range(100)]
    event = with_dimensions(many).to_event()
    assert len(event.dimensions) == DIMENSIONS_KEPT
    assert all(len(v) <= DIMENSION_VALUE_LIMIT for v in event.dimensions.values())

    # A Temporal client that builds the event itself is held to the same bounds,
    # and bounding twice changes nothing (history replays to the same value).
    direct = AlertEvent(
        alert_id="a1",
        condition=MonitorCondition.FIRED,
        rule="r",
        dimensions={f"n{i}": "x" * 5000 for i in range(50)},
    )
    assert len(direct.dimensions) == DIMENSIONS_KEPT
    again = AlertEvent.model_validate(direct.model_dump())
    assert again.dimensions == direct.dimensions
