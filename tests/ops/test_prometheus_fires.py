"""A real Prometheus (Debian's) scrapes a running `stanch dev` (gateway and
worker /metrics), evaluates ops/prometheus/stanch-rules.yml, and the kill switch
alert fires when on-call engages the switch, and resolves when it is released.
The rules' `for:` is shortened to a few seconds in the copy it evaluates; the
real `for:` values are tested by promtool (test_prometheus_rules.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from stanch.harness.waiting import wait_until
from tests.support.dev_stack import ROOT, running_dev_stack
from tests.support.prometheus import (
    SDK_METRICS,
    RunningPrometheus,
    rules_held_for,
    running_prometheus,
)

HELD = 3  # seconds each rule's condition must hold in the copy Prometheus evaluates
ALERT = ROOT / "examples" / "alerts" / "test_action_resource_health.json"
# Series a scrape of a stack that has run one incident shows (the dashboard's and
# the rules' others appear on failures: pages refused, audit errors, ...).
ALWAYS_SCRAPED = {
    "stanch_kill_switch_engaged",
    "stanch_kill_switch_unreadable",
    "stanch_incidents_open",
    "stanch_approvals_waiting",
    "stanch_approvals_overdue",
    "stanch_task_queue_pollers",
    "stanch_fleet_view_up",
    "stanch_alerts_received_total",
    "stanch_incidents_opened",
    "stanch_pages_sent",
}


def test_engaging_the_kill_switch_fires_its_alert_in_prometheus(tmp_path: Path):
    with running_dev_stack(tmp_path) as stack:
        targets = {"stanch-gateway": stack.gateway, "stanch-worker": stack.worker_metrics}
        rules = rules_held_for(HELD, tmp_path)
        with running_prometheus(tmp_path, rules, targets) as prometheus:
            both_up = f'count(up{{job=~"stanch-(gateway|worker)"}} == 1) == {len(targets)}'
            wait_until(lambda: prometheus.value(both_up), 60, "both targets scraped")

            # One incident, so the worker's counters and the SDK's metrics exist.
            sent = stack.stanch("alert", "send", str(ALERT))
            assert sent.returncode == 0, sent.stderr
            assert json.loads(sent.stdout)["incident_id"]
            wait_until(lambda: _scraped(prometheus) >= ALWAYS_SCRAPED | SDK_METRICS, 90, "metrics")
            # The gateway sees the worker polling: the fleet is healthy.
            wait_until(lambda: prometheus.value("max(stanch_task_queue_pollers) > 0"), 60, "poll")
            assert prometheus.value("max(stanch_kill_switch_engaged)") == 0
            assert "StanchKillSwitchEngaged" not in prometheus.firing()

            engaged = stack.stanch(
                "toggle", "remediation", "off", "--reason", "prometheus test", "--as", "dave"
            )
            assert engaged.returncode == 0, engaged.stderr
            started = time.monotonic()
            wait_until(lambda: "StanchKillSwitchEngaged" in prometheus.firing(), 60, "firing")
            took = time.monotonic() - started
            firing = prometheus.firing()
            assert firing["StanchKillSwitchEngaged"]["severity"] == "warning"
            assert took >= HELD, "it waited out its `for:`"
            # Nothing else: a healthy stack with the switch engaged raises one alert.
            assert set(firing) == {"StanchKillSwitchEngaged"}, firing
            print(f"StanchKillSwitchEngaged firing {took:.1f}s after `stanch toggle ... off`")

            released = stack.stanch("toggle", "remediation", "on", "--as", "dave")
            assert released.returncode == 0, released.stderr
            wait_until(lambda: not _kill_switch_alerts(prometheus), 60, "resolved")
            assert prometheus.value("max(stanch_kill_switch_engaged)") == 0


def _scraped(prometheus: RunningPrometheus) -> set[str]:
    return set(prometheus.api("label/__name__/values"))


def _kill_switch_alerts(prometheus: RunningPrometheus) -> list[object]:
    """Pending or firing."""
    alerts = prometheus.api("alerts")["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == "StanchKillSwitchEngaged"]
