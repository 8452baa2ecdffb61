"""Faults injected into azuresim while real Temporal retries drive the activities."""

from __future__ import annotations

import itertools
import tempfile
import uuid
from pathlib import Path
from typing import Any

from temporalio.worker import Worker

from stanch.activities.azure_errors import AUTHORIZATION_FAILED
from stanch.azuresim import AzureSim, load_world
from stanch.azuresim.faults import Fault
from stanch.models.settings import Settings
from stanch.testing.estate import VM1, WORLD
from stanch.worker import azure_activities
from tests.support.azure_probe import AzureProbe, ProbeInput, ProbeResult


async def probe(dev_env, azure, activity: str, arg: dict[str, Any]) -> ProbeResult:
    queue = f"probe-{uuid.uuid4()}"
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[AzureProbe],
        activities=azure_activities(azure, Settings(state_dir=Path(tempfile.mkdtemp()))),
    ):
        return await dev_env.client.execute_workflow(
            AzureProbe.run,
            ProbeInput(activity=activity, arg=arg),
            id=f"probe-{uuid.uuid4()}",
            task_queue=queue,
        )


async def test_three_429s_with_retry_after_then_success(dev_env, sim, azure):
    sim.faults.add(
        Fault(path="virtualMachines/vm-web-1$", method="GET", status=429, retry_after=1, times=3)
    )
    outcome = await probe(dev_env, azure, "get_resource", {"resource_id": VM1})
    assert outcome.ok, outcome
    gets = [
        c for c in sim.journal.calls() if c["method"] == "GET" and c["path"].endswith("vm-web-1")
    ]
    assert [c["status"] for c in gets] == [429, 429, 429, 200]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(gets)]
    assert all(gap >= 0.95 for gap in gaps), f"retries must wait for Retry-After: {gaps}"


async def test_403_fails_once_non_retryable_and_typed(dev_env, sim, azure):
    sim.faults.add(
        Fault(
            path="virtualMachines/vm-web-1$",
            method="GET",
            status=403,
            code="AuthorizationFailed",
            times=None,
        )
    )
    outcome = await probe(dev_env, azure, "get_resource", {"resource_id": VM1})
    assert not outcome.ok and outcome.error_type == AUTHORIZATION_FAILED and outcome.non_retryable
    assert len([c for c in sim.journal.calls() if c["status"] == 403]) == 1


def _estate(sim: AzureSim) -> list[dict[str, Any]]:
    return sorted(
        (
            {k: v for k, v in r.items() if k != "powerState"}
            for r in sim.state.snapshot()["resources"]
        ),
        key=lambda r: r["id"].lower(),
    )


async def test_retried_mutation_leaves_the_same_state_as_a_single_one(
    dev_env, sim, azure, tmp_path
):
    # The NIC update is applied but its answer is lost: the activity cannot know
    # it worked, fails, and Temporal retries it. (Twice: aiohttp itself re-sends
    # an idempotent PUT once when a kept-alive connection drops.)
    sim.faults.add(
        Fault(path="networkInterfaces/vm-web-1-nic$", method="PUT", drop_after=True, times=2)
    )
    outcome = await probe(
        dev_env, azure, "quarantine_network", {"resource_id": VM1, "incident_id": "inc-9"}
    )
    assert outcome.ok, outcome
    nic_puts = [
        c for c in sim.journal.calls() if c["method"] == "PUT" and c["path"].endswith("-nic")
    ]
    assert nic_puts and all(c["status"] is None and c["applied"] for c in nic_puts), nic_puts
    after = [c for c in sim.journal.calls() if c["seq"] > nic_puts[-1]["seq"]]
    assert any(c["method"] == "GET" and c["path"].endswith("-nic") for c in after), "retried"
    assert not any(c["mutation"] for c in after), "the retry found it done and wrote nothing"

    # The same quarantine, once, with nothing going wrong.
    world = load_world(WORLD)
    clean = AzureSim(world, state_dir=tmp_path / "clean").start()
    try:
        from stanch.activities.azure_clients import AzureClients
        from stanch.models.settings import Settings

        clean_azure = AzureClients(
            Settings(azure_endpoint=clean.url, azure_ca_file=clean.ca_file, azure_poll_seconds=0.05)
        )
        once = await probe(
            dev_env, clean_azure, "quarantine_network", {"resource_id": VM1, "incident_id": "inc-9"}
        )
        await clean_azure.close()
        assert once.ok
        assert _estate(sim) == _estate(clean)
        assert outcome.result and once.result
        assert outcome.result["nics"] == once.result["nics"]
    finally:
        clean.stop()
