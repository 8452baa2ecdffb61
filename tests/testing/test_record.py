"""`stanch runbook record NAME --to DIR` and the replay helper: one recorded
history lands in DIR and nothing else changes; it replays against the code
that made it, and an unpatched change to the runbook fails its replay."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from temporalio.workflow import NondeterminismError

from stanch.models.runbook import RunbookOutcome
from stanch.testing import VM1, replay_history
from stanch.testing.record import record_runbook
from stanch.testing.replay import recorded_histories
from stanch.worker import WORKFLOWS
from tests.support.changed_runbook import LabelGuard, LabelGuardReadingFirst
from tests.support.cli import run_stanch


def stanch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No stack: the state dir only keeps the command from reading this run's.
    return run_stanch(cwd.parent / "no-stack", cwd, *args)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def test_record_writes_one_history_and_touches_nothing_else(tmp_path: Path):
    histories = tmp_path / "tests" / "histories"
    histories.mkdir(parents=True)
    (histories / "restart_vm_pre_change.json").write_text('{"events": []}')
    (histories / "workflow_ids.json").write_text('{"other": "runbook-x"}\n')
    (tmp_path / "README.md").write_text("ours\n")
    before = snapshot(tmp_path)

    recorded = stanch("runbook", "record", "quarantine_vm", "--to", str(histories), cwd=tmp_path)

    assert recorded.returncode == 0, recorded.stderr
    assert "recorded quarantine_vm (contained" in recorded.stdout
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {"tests/histories/quarantine_vm.json"}
    assert {k: v for k, v in after.items() if k in before} == before
    await replay_history(histories / "quarantine_vm.json", WORKFLOWS)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["no_such_runbook"], "no runbook named 'no_such_runbook'"),
        (["restart_vm", "--params", "[1]"], "--params: must be a JSON object"),
        (["restart_vm", "--params", "{nope"], "--params: not JSON"),
        (["restart_vm", "--world", "missing.yaml"], "--world: no such file"),
    ],
)
def test_record_refuses_bad_input_and_writes_nothing(tmp_path: Path, args, problem):
    refused = stanch("runbook", "record", *args, "--to", str(tmp_path / "h"), cwd=tmp_path)
    assert refused.returncode == 2 and problem in refused.stderr, refused.stderr
    assert list(tmp_path.iterdir()) == []


async def test_a_recording_replays_and_an_unpatched_change_does_not(tmp_path: Path):
    path, result = await record_runbook(
        "label_guard", tmp_path, resource_id=VM1, extra_workflows=[LabelGuard]
    )
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert recorded_histories(tmp_path) == [path] and path.name == "label_guard.json"
    await replay_history(path, [LabelGuard])
    # A copy kept before a change replays under its own name too.
    kept = tmp_path / "label_guard_pre_read.json"
    kept.write_bytes(path.read_bytes())
    await replay_history(kept, [LabelGuard])
    with pytest.raises(NondeterminismError):
        await replay_history(path, [LabelGuardReadingFirst])
