"""`stanch drill`: every shipped scenario passes; an impossible target fails
with a report that says which."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DRILLS = Path(__file__).resolve().parents[2] / "examples" / "drills"


def drill(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "drill", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.mark.parametrize("scenario", sorted(DRILLS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenario_passes(scenario: Path):
    result = drill(scenario)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert f"drill {scenario.stem}: PASS" in result.stdout


def test_there_are_at_least_three_scenarios_including_throttling_and_no_ack():
    names = {p.stem for p in DRILLS.glob("*.yaml")}
    assert len(names) >= 3 and {"azure-throttling", "nobody-acks-tier1"} <= names


def test_an_impossible_rto_fails_with_a_clear_report(tmp_path: Path):
    scenario = yaml.safe_load((DRILLS / "vm-down-quarantine.yaml").read_text())
    scenario["name"] = "impossible-rto"
    scenario["targets"]["contain"] = "1ms"
    scenario["world"] = str(DRILLS / scenario["world"])
    for alert in scenario["alerts"]:
        alert["file"] = str(DRILLS / alert["file"])
    path = tmp_path / "impossible.yaml"
    path.write_text(yaml.safe_dump(scenario))
    result = drill(path)
    assert result.returncode == 1, result.stdout
    assert "drill impossible-rto: FAIL" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("contain (RTO)"))
    assert line.endswith("MISSED") and "0.001s" in line


def test_a_broken_scenario_is_refused_by_path(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nworld: w.yaml\npolicy: {}\nalerts: []\ntargets: {contain: soon}\n")
    result = drill(path)
    assert result.returncode == 2
    assert "alerts" in result.stderr and "targets.contain" in result.stderr
