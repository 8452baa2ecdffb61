"""A STANCH_* setting a process cannot run with is bad input like any other:
exit 2 naming the variable and the problem, never a traceback, and never the
value (a setting may hold a secret), before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("command", "variable", "value", "problem"),
    [
        (["gateway"], "STANCH_WORKER_WORKFLOW_TASK_SLOTS", "-77", "greater than or equal to 1"),
        (["worker"], "STANCH_WORKER_CACHED_WORKFLOWS", "lots-77", "valid integer"),
        (["incidents"], "STANCH_AZURE_POLL_SECONDS", "soon-77", "valid number"),
    ],
)
def test_a_bad_setting_exits_2_naming_it_and_not_its_value(
    tmp_path: Path, command: list[str], variable: str, value: str, problem: str
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env |= {
        variable: value,
        "STANCH_STATE_DIR": str(tmp_path / "state"),
        # Nothing listens here: the refusal must come before any connection.
        "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr and problem in result.stderr
    assert "77" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists(), "nothing started"
