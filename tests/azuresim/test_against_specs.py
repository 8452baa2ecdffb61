"""azuresim's answers checked against Azure's published REST API specifications
(the OpenAPI documents of Azure/azure-rest-api-specs, vendored unmodified under
tests/azuresim/specs/ with their licence), not only against what the SDKs
tolerate: each route azuresim serves for an operation exists in the spec with
that method, the spec's api-version is one azuresim takes, and the body it
answers validates against the spec's response schema (tests/support/openapi.py).

Deliberate divergences, each with its reason:
- Log Analytics `tables[].rows[][]`: the v1 spec types every cell as a string;
  the service (and azure-monitor-query, which parses them) sends JSON numbers
  for long/real columns and null for empty cells. azuresim does as the service.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from stanch.azuresim.admin import SimAdmin, trusting
from stanch.azuresim.api_versions import api_versions
from tests.support.estate import SUB, VM1, VMSS, WORKSPACE
from tests.support.openapi import Validation, document, operation, response_schema

SPECS = Path(__file__).parent / "specs" / "specification"
LOGS = (
    SPECS
    / "operationalinsights/data-plane/Microsoft.OperationalInsights/stable/v1/OperationalInsights.json"
)
METRICS = SPECS / "monitor/data-plane/Microsoft.Insights/stable/2024-02-01/metricBatch.json"
AUTH = {"Authorization": "Bearer anything"}
WORKSPACE_RESOURCE = (
    f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/"
    "Microsoft.OperationalInsights/workspaces/law-ops"
)
CELLS_ARE_TYPED = "/tables/*/rows/*"  # see the module's docstring


def client(sim) -> httpx.Client:
    return httpx.Client(base_url=sim.url, verify=trusting(sim.ca_file), headers=AUTH, timeout=10)


def test_the_vendored_specs_are_the_ones_named_in_the_readme():
    readme = (Path(__file__).parent / "specs" / "README.md").read_text()
    vendored = sorted(p.relative_to(SPECS.parent).as_posix() for p in SPECS.rglob("*.json"))
    assert vendored, "no spec vendored"
    for path in vendored:
        assert path in readme, f"{path} is not listed (with its commit) in specs/README.md"
    assert (Path(__file__).parent / "specs" / "LICENSE").read_text().startswith("The MIT License")


@pytest.mark.parametrize(
    "query",
    ["Heartbeat", "Event | where EventLevelName == 'Error' | take 1", "Event | count"],
)
def test_log_analytics_answers_match_the_spec(sim, query):
    spec_operation = operation(LOGS, "/workspaces/{workspaceId}/query", "post")
    assert spec_operation["operationId"] == "Query_Post"
    assert document(LOGS)["basePath"] == "/v1", "azuresim serves it under /v1"
    with client(sim) as http:
        by_workspace = http.post(f"/v1/workspaces/{WORKSPACE}/query", json={"query": query})
        by_resource = http.post(f"/v1{WORKSPACE_RESOURCE}/query", json={"query": query})
    for answer in (by_workspace, by_resource):
        assert answer.status_code == 200
        schema = response_schema(LOGS, "/workspaces/{workspaceId}/query", "post", 200)
        assert Validation(ignore=[CELLS_ARE_TYPED]).check(answer.json(), schema) == []


def test_log_analytics_errors_match_the_spec(sim):
    with client(sim) as http:
        unknown = http.post(f"/v1/workspaces/{WORKSPACE}/query", json={"query": "NoSuchTable"})
        missing = http.post(
            "/v1/workspaces/00000000-0000-0000-0000-000000000000/query", json={"query": "T"}
        )
    assert (unknown.status_code, missing.status_code) == (400, 404)
    schema = response_schema(LOGS, "/workspaces/{workspaceId}/query", "post", "default")
    for answer in (unknown, missing):
        assert Validation().check(answer.json(), schema) == []


def test_metrics_batch_answers_match_the_spec(sim):
    spec = document(METRICS)
    assert spec["info"]["version"] in api_versions("Microsoft.Insights/metrics")
    assert operation(METRICS, "/subscriptions/{subscriptionId}/metrics:getBatch", "post")
    admin = SimAdmin(sim.url, sim.ca_file)
    # A gap in a series, as a metric with no samples in a minute has.
    admin.amend(metrics={VMSS: {"Percentage CPU": {"unit": "Percent", "values": [40, None, 60]}}})
    admin.close()
    with client(sim) as http:
        answer = http.post(
            f"/subscriptions/{SUB}/metrics:getBatch",
            params={
                "api-version": spec["info"]["version"],
                "metricnamespace": "Microsoft.Compute/virtualMachines",
                "metricnames": "Percentage CPU,Network In",
                "aggregation": "average,maximum",
                "starttime": "2026-12-01T00:00:00Z",
                "endtime": "2026-12-01T01:00:00Z",
            },
            json={"resourceids": [VM1, VMSS]},
        )
    assert answer.status_code == 200
    schema = response_schema(
        METRICS, "/subscriptions/{subscriptionId}/metrics:getBatch", "post", 200
    )
    assert Validation().check(answer.json(), schema) == []


def test_the_validator_reports_what_the_spec_refuses():
    """The checks above can fail: a body the spec refuses gives problems."""
    schema = response_schema(
        METRICS, "/subscriptions/{subscriptionId}/metrics:getBatch", "post", 200
    )
    bad = {
        "values": [
            {
                "starttime": "x",
                "value": [
                    {
                        "id": "m",
                        "type": "t",
                        "name": {"value": "n"},
                        "unit": "Percent",
                        "timeseries": [{"data": [{"timeStamp": "yesterday", "average": None}]}],
                        "colour": "red",
                    }
                ],
            }
        ]
    }
    problems = Validation().check(bad, schema)
    assert problems == [
        "/values/0/endtime: required by the spec, missing",
        "/values/0/value/0/timeseries/0/data/0/timeStamp: 'yesterday' is not an RFC 3339 date-time",
        "/values/0/value/0/timeseries/0/data/0/average: null where the spec has no x-nullable",
        "/values/0/value/0/colour: not in the spec",
    ]
