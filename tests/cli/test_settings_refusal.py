"""A STANCH_* setting a process cannot run with is bad input like any other:
exit 2 naming the variable and the problem, never a traceback, and never the
value (a setting may hold a secret), before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_stanch

DRILL = Path(__file__).parents[2] / "examples" / "drills" / "vm-down-quarantine.yaml"


@pytest.mark.parametrize(
    ("command", "variable", "value", "problem"),
    [
        (["gateway"], "STANCH_WORKER_WORKFLOW_TASK_SLOTS", "-77", "greater than or equal to 1"),
        (["worker"], "STANCH_WORKER_CACHED_WORKFLOWS", "lots-77", "valid integer"),
        (["incidents"], "STANCH_AZURE_POLL_SECONDS", "soon-77", "valid number"),
        # These two set some settings themselves; the environment's still count.
        (["dev"], "STANCH_WORKER_WORKFLOW_TASK_SLOTS", "-77", "greater than or equal to 1"),
        (["drill", str(DRILL)], "STANCH_AZURE_POLL_SECONDS", "soon-77", "valid number"),
    ],
)
def test_a_bad_setting_exits_2_naming_it_and_not_its_value(
    tmp_path: Path, command: list[str], variable: str, value: str, problem: str
):
    result = run_stanch(
        tmp_path / "state",
        tmp_path,
        *command,
        # Nothing listens there: the refusal must come before any connection.
        settings={variable: value, "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:9"},
    )
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr and problem in result.stderr
    assert "77" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists(), "nothing started"
