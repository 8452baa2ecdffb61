"""ops/grafana/stanch.json: a dashboard Grafana can import, whose every query
Prometheus parses (promtool checks them as recording rules) and reads only
metrics stanch, Temporal's SDK or Prometheus itself export."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.support.prometheus import (
    DASHBOARD,
    PROMETHEUS_METRICS,
    SDK_METRICS,
    promql_metrics,
    promtool,
    stanch_metrics,
)

# What on-call looks for on the dashboard, and a metric that shows each.
SHOWN = {
    "incidents open by severity": "stanch_incidents_open",
    "alert intake": "stanch_alerts_received_total",
    "alert refusals": "stanch_alerts_refused_total",
    "pages sent": "stanch_pages_sent",
    "pages failed": "stanch_page_failures_total",
    "approvals waiting": "stanch_approvals_waiting",
    "runbook outcomes": "stanch_runbook_outcomes",
    "kill switch": "stanch_kill_switch_engaged",
    "audit append errors": "stanch_audit_append_errors_total",
    "worker activity": "temporal_activity_execution_latency_count",
    "workers polling": "stanch_task_queue_pollers",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries() -> dict[str, str]:
    """Every PromQL expression of the dashboard, by where it is; Grafana's
    $__rate_interval as the 5m it is at a 1m scrape interval."""
    board = dashboard()
    found = {
        f"panel {panel['id']} ({panel['title']}) {target['refId']}": target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }
    for annotation in board["annotations"]["list"]:
        found[f"annotation {annotation['name']}"] = annotation["expr"]
    return {where: expr.replace("$__rate_interval", "5m") for where, expr in found.items()}


def test_it_is_a_dashboard_grafana_imports():
    board = dashboard()
    assert board["uid"] and board["title"] == "stanch" and board["schemaVersion"] >= 36
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["description"], f"{panel['title']}: say what it shows"


def test_every_query_parses(tmp_path):
    rules = {
        "groups": [
            {
                "name": "stanch-dashboard",
                "rules": [
                    {"record": f"stanch_dashboard:query_{n}", "expr": expr}
                    for n, expr in enumerate(queries().values())
                ],
            }
        ]
    }
    generated = tmp_path / "dashboard-queries.yml"
    generated.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(generated))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries())} rules found" in checked.stdout


def test_a_query_that_does_not_parse_is_caught(tmp_path):
    generated = tmp_path / "broken.yml"
    broken = {
        "record": "stanch_dashboard:broken",
        "expr": "sum by (severity (stanch_incidents_open)",
    }
    generated.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [broken]}]}))
    assert promtool("check", "rules", str(generated)).returncode != 0


def test_queries_read_only_metrics_that_are_exported():
    known = stanch_metrics() | SDK_METRICS | PROMETHEUS_METRICS
    for where, expr in queries().items():
        read = promql_metrics(expr)
        assert read, where
        assert read <= known, f"{where} reads metrics nobody exports: {read - known}"


def test_it_shows_what_on_call_looks_for():
    read = set().union(*(promql_metrics(expr) for expr in queries().values()))
    missing = {topic: metric for topic, metric in SHOWN.items() if metric not in read}
    assert missing == {}
