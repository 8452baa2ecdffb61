"""Every recorded history must replay against today's workflow code: a change
that would break running incidents fails here, and needs `workflow.patched`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.workflow import NondeterminismError

from stanch.activities.resources import ResourceActivities
from stanch.models.azure import ResourceRef
from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult
from stanch.runbooks.block_ip import BlockIp
from stanch.testing.replay import recorded_histories, replay_history
from stanch.worker import WORKFLOWS

HERE = Path(__file__).resolve().parents[1] / "histories"
HISTORIES = recorded_histories(HERE)


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
        # Added in issue 13's round: each new workflow's representative path.
        "runbook_block_ip",
        "runbook_failover",
        "access_grant",  # approved, granted, expired, revoked
        "communications",  # an update posted and delivered
        # Before an incident's task priority followed its severity up.
        "incident_storm_dev_server_pre_priority",
        # Alerts piled up while no worker ran, applied a workflow task's worth at a time.
        "incident_paced_pile",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path):
    await replay_history(path, WORKFLOWS)


@workflow.defn(name="block_ip", sandboxed=False)
class BlockIpReadingFirst(BlockIp):
    """The naive change to block_ip: a new first step, not behind a patch."""

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await super().run(inp)

    async def procedure(self) -> RunbookOutcome | None:
        await self.step(
            "read", ResourceActivities.get_resource, ResourceRef(resource_id=self.resource_id)
        )
        return await super().procedure()


async def test_an_unpatched_change_to_a_new_runbook_fails_its_replay():
    # The recording is what keeps a change to block_ip honest: it must notice.
    with pytest.raises(NondeterminismError):
        await replay_history(HERE / "runbook_block_ip.json", [BlockIpReadingFirst])
