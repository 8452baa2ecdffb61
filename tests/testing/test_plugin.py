"""stanch's pytest plugin as a team uses it: loaded through its pytest11 entry
point (nothing in tests/conftest.py asks for it), its stanch_* fixtures beside
stanch's own, a worker that runs a runbook to its gate, people's decisions
signed as the on-call API signs them, and a team's own azuresim world."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from stanch.azuresim import AzureSim
from stanch.models.runbook import RunbookOutcome, StepStatus
from stanch.testing import VM1, VM2, RunbookWorker, journal_mutations, result_of, until_gate

SMALL_WORLD = Path(__file__).with_name("small_world.yaml")
TEAM_VM = (
    "/subscriptions/00000000-0000-0000-0000-0000000000bb/resourceGroups/rg-team"
    "/providers/Microsoft.Compute/virtualMachines/vm-team-1"
)


def test_the_plugin_comes_from_its_entry_point(pytestconfig: pytest.Config):
    plugin = pytestconfig.pluginmanager.get_plugin("stanch")
    assert plugin is not None and plugin.__name__ == "stanch.testing.plugin"


async def test_a_runbook_waits_at_its_gate_until_an_approver_decides(
    stanch_worker: RunbookWorker, stanch_sim: AzureSim
):
    handle = await stanch_worker.start("quarantine_vm", VM1, incident_id="plug1")
    gate = await until_gate(handle, "isolate")
    # alice is on call, carol and dave approve; nothing changed before the gate.
    assert gate.eligible == ["alice", "carol", "dave"] and journal_mutations(stanch_sim) == []
    with pytest.raises(WorkflowUpdateFailedError):  # bob holds no approver role
        await stanch_worker.approve(handle, "isolate", by="bob")
    view = await stanch_worker.approve(handle, "isolate", by="carol")
    assert view.pending is None or view.pending.approvals == ["carol"]
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.CONTAINED, result.summary
    # Two forensic snapshots, then tag, lock, NSG and NIC.
    changes = [m for m, _ in journal_mutations(stanch_sim)]
    assert changes == ["PUT", "PUT", "PATCH", "PUT", "PUT", "PUT"]


async def test_a_rejected_gate_denies_and_changes_nothing_more(
    stanch_worker: RunbookWorker, stanch_sim: AzureSim
):
    handle = await stanch_worker.start("quarantine_vm", VM1)
    await stanch_worker.reject(handle, "isolate", by="dave", comment="not this one")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.DENIED
    gate = next(s for s in result.steps if s.name == "approval: isolate")
    assert gate.status is StepStatus.DENIED
    assert journal_mutations(stanch_sim) == []


def test_the_default_world_is_the_packaged_one(stanch_sim: AzureSim):
    ids = {r["id"] for r in stanch_sim.state.snapshot()["resources"]}
    assert VM1 in ids and VM2 in ids


@pytest.mark.stanch_world(str(SMALL_WORLD))
async def test_a_team_world_replaces_the_default(stanch_worker, stanch_sim, stanch_policy):
    ids = {r["id"] for r in stanch_sim.state.snapshot()["resources"]}
    assert TEAM_VM in ids and VM1 not in ids
    # The worker's policy may change what that world holds, and nothing else.
    assert "00000000-0000-0000-0000-0000000000bb" in stanch_policy.read_text()
    handle = await stanch_worker.start("restart_vm", TEAM_VM)
    await stanch_worker.approve(handle, "restart", by="carol")
    result = await result_of(handle)
    assert ("POST", "vm-team-1/restart") in journal_mutations(stanch_sim), result.summary


def test_stanchs_own_fixtures_keep_their_names(request: pytest.FixtureRequest):
    # The plugin's fixtures are all stanch_*: tests/conftest.py's sim, started,
    # ts_env, ... are still conftest's.
    for name in ("sim", "started", "ts_env", "runbooks", "azure"):
        definitions = request._fixturemanager.getfixturedefs(name, request.node)
        assert definitions and definitions[-1].baseid.startswith("tests"), name


@pytest.mark.devserver
async def test_the_dev_server_lists_by_stanchs_search_attributes(stanch_dev_server):
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    from stanch.client.search_attributes import SEARCH_ATTRIBUTES

    listed = await stanch_dev_server.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=stanch_dev_server.client.namespace)
    )
    assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)
