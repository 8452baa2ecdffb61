"""Every recorded history must replay against today's workflow code: a change
that would break running incidents fails here, and needs `workflow.patched`."""

from __future__ import annotations

from pathlib import Path

import pytest

from stanch.testing.replay import recorded_histories, replay_history
from stanch.worker import WORKFLOWS

HISTORIES = recorded_histories(Path(__file__).resolve().parents[1] / "histories")


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
        # Recorded before issue 15: reports awaited one by one, an approval
        # answered after its audit record, the deadline timer restarted per wake.
        "incident_with_quarantine_pre_unawaited_reports",
        "incident_lifecycle_pre_steady_timer",
        "incident_storm_dev_server_pre_steady_timer",
        "incident_bounded_storm_continued_pre_steady_timer",
        "runbook_restart_vm_pre_answer_before_audit",
        "runbook_release_pre_answer_before_audit",
        "runbook_scale_out_vmss_pre_answer_before_audit",
        "runbook_quarantine_vm_under_incident",  # reports sent without waiting
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path):
    await replay_history(path, WORKFLOWS)
