"""Issue 13, item 2: a hot-reloaded policy binding a runbook the worker did not
load is refused like any invalid edit: the worker's response plan keeps the
last valid policy, says why, and the alert meant for the missing runbook does
not run the next binding's (reviews/authoring.md §7.5)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from stanch.activities.response_plan import ResponsePlanActivities
from stanch.models.config import ConfigError
from stanch.models.incident import PlanRequest, ResponsePlan
from stanch.models.settings import Settings
from stanch.stores.policy import PolicySource
from stanch.testing.estate import VM1
from tests.support.plans import policy_file
from tests.support.team_package import DISK_GUARD_FIRST, disk_guard_policy, rewrite_policy

DISK_ALERT = PlanRequest(rule="vm-os-disk-full", targets=[VM1], monitoring_service="Platform")


def plan_activity(settings: Settings) -> ResponsePlanActivities:
    """The worker's own load_response_plan, built as the worker builds it."""
    from stanch.worker import activities_for

    (found,) = [a for a in activities_for(settings) if a.__name__ == "load_response_plan"]
    owner = found.__self__  # type: ignore[attr-defined]
    assert isinstance(owner, ResponsePlanActivities)
    return owner


async def test_an_edit_binding_an_unloaded_runbook_keeps_the_last_valid_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = policy_file(tmp_path, runbooks=[{"runbook": "restart_vm"}])
    plans = plan_activity(Settings(config=path, state_dir=tmp_path))
    env = ActivityEnvironment()
    before: ResponsePlan = await env.run(plans.load_response_plan, DISK_ALERT)
    assert before.runbook is not None and before.runbook.name == "restart_vm"
    assert before.warning is None

    # The review's edit: disk_guard (not installed on this worker) ahead of
    # restart_vm; with it, a roster change that must not apply either.
    rewrite_policy(path, runbooks=DISK_GUARD_FIRST, incident={"reopen_window": "2h"})
    with caplog.at_level(logging.ERROR, logger="stanch.policy"):
        after: ResponsePlan = await env.run(plans.load_response_plan, DISK_ALERT)

    assert after.reopen_window == before.reopen_window  # the whole edit is refused
    assert after.runbook == before.runbook  # the last valid policy's choice, not a fall-through
    assert after.warning is not None
    assert "runbooks[0].runbook: no runbook named 'disk_guard' is loaded" in after.warning
    assert "using the last valid version of stanch.yaml" in after.warning
    assert "no runbook named 'disk_guard' is loaded" in caplog.text


def test_a_fresh_worker_has_no_valid_version_to_fall_back_on(tmp_path: Path):
    source = PolicySource(disk_guard_policy(tmp_path), runbooks={"restart_vm"})

    with pytest.raises(ConfigError, match=r"runbooks\[0\]\.runbook: no runbook named 'disk_guard'"):
        source.current()


def test_without_the_loaded_runbooks_no_binding_is_checked(tmp_path: Path):
    # Readers that run no runbook (paging, scopes) may pass none.
    config, warning = PolicySource(disk_guard_policy(tmp_path)).current()
    assert warning is None
    assert config.runbooks[0].runbook == "disk_guard"
