"""Every recorded history must replay against today's workflow code: a change
that would break running incidents fails here, and needs `workflow.patched`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from stanch.worker import WORKFLOWS

HISTORIES = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "histories").glob("*.json")
    if p.name != "workflow_ids.json"
)


def test_histories_are_kept():
    names = {p.stem for p in HISTORIES}
    # Histories from before a change stay: incidents recorded by them may still run.
    assert {
        "incident_lifecycle_pre_runbooks",
        "incident_storm_pre_runbooks",
        "incident_lifecycle",
        "incident_storm_dev_server",
        "incident_with_quarantine",
        "runbook_quarantine_vm",
        "runbook_release",
        "runbook_restart_vm",
        "runbook_verify_recovery",
        "runbook_scale_out_vmss",
        "runbook_scale_out_vmss_pre_undo_from_read",
        "incident_bounded_storm",  # folds its timeline, continues as new carrying a bound
        "incident_bounded_storm_continued",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path):
    ids = json.loads((path.parent / "workflow_ids.json").read_text())
    history = WorkflowHistory.from_json(ids.get(path.stem, path.stem), path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
