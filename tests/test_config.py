"""stanch.yaml validation: every problem reported with its path."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from activities.response_plan import build_plan
from models.config import ConfigError, load_config, parse_config
from models.incident import PlanRequest
from workflows.escalation import tier_recipients

ROOT = Path(__file__).resolve().parents[1]


def base() -> dict:
    return yaml.safe_load((ROOT / "stanch.yaml").read_text())


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    return error.value.problems


def test_shipped_policies_are_valid():
    for path in (ROOT / "stanch.yaml", ROOT / "examples" / "demo.yaml"):
        load_config(path)


def test_unknown_person_is_named_by_path():
    data = base()
    data["escalation_policies"]["default"]["tiers"][1]["people"] = ["carol", "zed"]
    assert problems(data) == [
        "escalation_policies.default.tiers[1].people[1]: 'zed' is not on the roster"
    ]


def test_type_errors_and_typos_are_named_by_path():
    data = base()
    data["escalation_policies"]["default"]["tiers"][0]["timeout"] = "soon"
    data["roster"][0]["rolez"] = ["x"]
    found = problems(data)
    assert any(
        p.startswith("escalation_policies.default.tiers[0].timeout: ") and "soon" in p
        for p in found
    )
    assert any(p.startswith("roster[0].rolez: ") for p in found)


def test_channel_and_schedule_references():
    data = base()
    data["escalation_policies"]["default"]["channels"] = ["nowhere"]
    data["schedules"]["primary"]["rotation"] = ["alice", "ghost"]
    found = problems(data)
    assert "escalation_policies.default.channels[0]: no channel named 'nowhere'" in found
    assert "schedules.primary.rotation[1]: 'ghost' is not on the roster" in found


def test_service_matching_and_schedules():
    config = parse_config(base())
    vm = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"
    plan = build_plan(config, PlanRequest(rule="cpu", targets=[vm]))
    assert plan.service == "compute" and plan.policy_name == "default"
    other = build_plan(
        config, PlanRequest(rule="x", targets=["/subscriptions/s/providers/microsoft.web/sites/a"])
    )
    assert other.service == "default"
    monday = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    tier = plan.policy.tiers[0]
    assert [p.id for p in tier_recipients(plan, tier, monday)] == ["alice"]
    assert [p.id for p in tier_recipients(plan, tier, monday + timedelta(days=7))] == ["bob"]
    assert [p.id for p in tier_recipients(plan, tier, monday + timedelta(days=14))] == ["alice"]


def test_config_check_cli_exit_codes(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "cli.main", "config", "check", str(ROOT / "stanch.yaml")],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    data = base()
    data["escalation_policies"]["default"]["tiers"][0]["schedules"] = ["nightshift"]
    bad = tmp_path / "stanch.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "config", "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        "escalation_policies.default.tiers[0].schedules[0]: no schedule named 'nightshift'"
        in result.stderr
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("roster: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "config", "check", str(broken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "line" in result.stderr
