"""Issue 13, item 2 (reviews/authoring.md §7.5: `stanch dev` started without a
word and a disk alert ran restart_vm): a binding to a runbook that is not
loaded keeps the worker, the gateway and `stanch dev` from starting, exit 2
naming the binding, before anything is started. A team activity taking a
name stanch's own activity has keeps `stanch worker` from starting too."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from stanch.harness.ports import free_port
from stanch.models.config import ConfigError
from stanch.models.settings import Settings
from stanch.testing.decisions import TEST_DECISION_KEY
from tests.support.plans import policy_file
from tests.support.team_package import disk_guard_policy, install_team_package, run_stanch_with

REFUSAL = "runbooks[0].runbook: no runbook named 'disk_guard' is loaded"


def test_stanch_dev_refuses_to_start_and_starts_nothing(tmp_path: Path):
    policy = disk_guard_policy(tmp_path)
    state = tmp_path / "state"
    ports = {name: str(free_port()) for name in ("http", "temporal", "ui", "sim", "metrics")}

    refused = run_stanch_with(
        [],
        tmp_path,
        "dev",
        "--state-dir",
        str(state),
        "--config",
        str(policy),
        "--http-port",
        ports["http"],
        "--temporal-port",
        ports["temporal"],
        "--ui-port",
        ports["ui"],
        "--sim-port",
        ports["sim"],
        "--metrics-port",
        ports["metrics"],
        timeout=60,
    )

    assert refused.returncode == 2, refused.stderr
    assert f"{policy}: invalid\n{REFUSAL}" in refused.stderr
    assert "stanch dev is up" not in refused.stdout
    # Refused before the dev server, azuresim or any credential: no env file
    # for other terminals, no incident database.
    assert not (state / "env").exists()
    assert not (state / "temporal.db").exists()
    assert sorted(p.name for p in state.iterdir()) == []


def test_stanch_worker_and_gateway_refuse_to_start(tmp_path: Path):
    policy = disk_guard_policy(tmp_path)
    settings = {
        "STANCH_CONFIG": str(policy),
        # Unreachable on purpose: the refusal comes before any connection.
        "STANCH_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "STANCH_ALERT_TOKEN": "an-alert-token-long-enough-for-the-gateway",
        "STANCH_DECISION_KEY": TEST_DECISION_KEY,
        "STANCH_STATE_DIR": str(tmp_path / "state"),
    }

    for command in (["worker"], ["gateway", "--port", str(free_port())]):
        refused = run_stanch_with([], tmp_path, *command, settings=settings, timeout=60)
        assert refused.returncode == 2, (command, refused.stderr)
        assert f"{policy}: invalid\n{REFUSAL}" in refused.stderr, command


async def test_run_worker_and_the_in_process_gateway_refuse_the_policy(tmp_path: Path):
    from stanch.gateway.app import create_app
    from stanch.worker import run_worker

    settings = Settings(
        config=disk_guard_policy(tmp_path),
        state_dir=tmp_path,
        temporal_address=f"127.0.0.1:{free_port()}",  # never reached
        alert_token=SecretStr("an-alert-token-long-enough-for-the-gateway"),
    )

    with pytest.raises(ConfigError) as worker:
        await run_worker(settings)
    with pytest.raises(ConfigError) as gateway:
        create_app(settings)

    assert worker.value.problems[0].startswith(REFUSAL)
    assert gateway.value.problems[0].startswith(REFUSAL)


CLASH = """from temporalio import activity


@activity.defn(name="get_resource")
async def get_resource(ref: dict) -> dict:
    return ref
"""


@pytest.mark.devserver
def test_stanch_worker_refuses_a_team_activity_taking_a_built_in_name(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    site = install_team_package(
        tmp_path / "site",
        entry_points={"stanch.activities": {"clash": "myteam_runbooks.clash:get_resource"}},
        extra_files={"clash.py": CLASH},
    )
    settings = {
        "STANCH_CONFIG": str(policy_file(tmp_path)),
        "STANCH_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "STANCH_TASK_QUEUE": f"tq-{uuid.uuid4()}",
        "STANCH_STATE_DIR": str(tmp_path / "state"),
    }

    refused = run_stanch_with([site], tmp_path, "worker", settings=settings, timeout=60)

    assert refused.returncode == 2, refused.stderr
    assert "activity 'get_resource' is defined twice: by stanch (" in refused.stderr
    assert (
        "by entry point stanch.activities: clash = myteam_runbooks.clash:get_resource "
        "(myteam-runbooks 1.2.3) (myteam_runbooks.clash.get_resource)"
    ) in refused.stderr
    assert "Traceback" not in refused.stderr
