"""stanch.testing: what a team needs to test its runbooks the way stanch tests
its own, shipped in the wheel.

The pytest plugin (`stanch.testing.plugin`, loaded through the `pytest11`
entry point) gives the fixtures: `stanch_env`, `stanch_dev_server`, `stanch_sim`,
`stanch_worker`, ... Here are the helpers tests call:

    handle = await stanch_worker.start("disk_guard", VM1)
    await stanch_worker.approve(handle, "apply", by="carol")
    result = await result_of(handle)
    assert journal_mutations(stanch_sim) == [("PATCH", "tags/default")]

and, for recorded histories, `replay_history(path, stanch_workflows)`. VM1, VM2,
... are resources of azuresim's packaged default world (`estate`)."""

from stanch.testing.decisions import SIGNER, approve, decide, reject, signed
from stanch.testing.estate import NIC1, RG, SUB, VM1, VM2, VMSS, WORKSPACE, WORLD
from stanch.testing.replay import recorded_histories, replay_history
from stanch.testing.runbooks import (
    approval_plan,
    audit_records,
    journal_mutations,
    result_of,
    start_runbook,
)
from stanch.testing.started import Started
from stanch.testing.worker import RunbookWorker, until_gate

__all__ = [
    "NIC1",
    "RG",
    "SIGNER",
    "SUB",
    "VM1",
    "VM2",
    "VMSS",
    "WORKSPACE",
    "WORLD",
    "RunbookWorker",
    "Started",
    "approval_plan",
    "approve",
    "audit_records",
    "decide",
    "journal_mutations",
    "recorded_histories",
    "reject",
    "replay_history",
    "result_of",
    "signed",
    "start_runbook",
    "until_gate",
]
