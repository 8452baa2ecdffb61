"""ops/prometheus/stanch-rules.yml, checked by Debian's promtool: the rules
parse, each has what on-call needs, and `promtool test rules` shows every one
firing on its condition (ops/prometheus/tests)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.prometheus import (
    PROMETHEUS_METRICS,
    RULE_TESTS,
    RULES,
    promql_metrics,
    promtool,
    stanch_metrics,
)

SEVERITIES = {"critical", "warning", "info"}


def alerting_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerting_rules())} rules found" in checked.stdout


def test_the_example_configuration_loads_the_rules():
    checked = promtool("check", "config", str(RULES.parent / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerting_rules())} rules found" in checked.stdout


def test_promtool_unit_tests_pass():
    assert RULE_TESTS, "no promtool tests in ops/prometheus/tests"
    tested = promtool("test", "rules", *map(str, RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(RULE_TESTS), tested.stdout


def test_every_rule_is_shown_firing_by_a_unit_test():
    fired = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - fired == set(), "rules no promtool test shows firing"
    assert fired - names == set(), "tests of rules that do not exist"


def test_every_rule_says_how_bad_and_what_to_do():
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["labels"]["service"] == "stanch", name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert len(rule["annotations"]["description"]) > 80, f"{name}: say what to do"
        assert "for" in rule, f"{name}: a `for:` keeps a blip from paging"


def test_rules_read_only_metrics_stanch_or_prometheus_export():
    known = stanch_metrics() | PROMETHEUS_METRICS
    for rule in alerting_rules():
        read = promql_metrics(rule["expr"])
        assert read, rule["alert"]
        assert read <= known, f"{rule['alert']} reads unknown metrics: {read - known}"


def test_a_broken_rule_fails_the_unit_tests(tmp_path):
    # The unit tests can fail: the kill switch rule reading the wrong gauge.
    broken = tmp_path / "stanch-rules.yml"
    broken.write_text(
        RULES.read_text().replace(
            "expr: max(stanch_kill_switch_engaged) == 1",
            "expr: max(stanch_kill_switch_engaged) == 2",
        )
    )
    assert broken.read_text() != RULES.read_text()
    tests = tmp_path / "tests"
    tests.mkdir()
    for path in RULE_TESTS:
        (tests / path.name).write_text(path.read_text())
    tested = promtool("test", "rules", *(str(tests / p.name) for p in RULE_TESTS))
    assert tested.returncode != 0
    assert "StanchKillSwitchEngaged" in tested.stdout + tested.stderr
