"""Issue 13, item 2 (the review's dangerous fall-through, reviews/authoring.md
§7.5): a disk alert, a binding to disk_guard (not loaded) ahead of restart_vm,
whose own match also catches the alert. Refusal, never substitution: no
runbook runs, and the plan says which binding is why."""

from __future__ import annotations

from pathlib import Path

from stanch.activities.response_plan import build_plan, choose_runbook
from stanch.models.incident import PlanRequest
from stanch.runbooks.registry import catalog
from stanch.stores.policy import load_config
from stanch.testing.estate import VM1
from tests.support.plans import policy_file
from tests.support.team_package import disk_guard_policy

DISK_ALERT = PlanRequest(rule="vm-os-disk-full", targets=[VM1], monitoring_service="Platform")
CPU_ALERT = PlanRequest(rule="vm-cpu-high", targets=[VM1], monitoring_service="Platform")


def test_the_disk_alert_would_otherwise_run_restart_vm(tmp_path: Path):
    # The control: without the disk_guard binding restart_vm takes this alert,
    # so the refusal below is what keeps it from running.
    config = load_config(policy_file(tmp_path, runbooks=[{"runbook": "restart_vm"}]))

    choice, warning = choose_runbook(config, DISK_ALERT, catalog())

    assert choice is not None and choice.name == "restart_vm"
    assert warning is None


def test_a_binding_to_an_unloaded_runbook_never_falls_through(tmp_path: Path):
    config = load_config(disk_guard_policy(tmp_path))

    choice, warning = choose_runbook(config, DISK_ALERT, catalog())
    plan = build_plan(config, DISK_ALERT, catalog())

    assert choice is None
    assert plan.runbook is None
    assert warning is not None and warning == plan.warning
    assert warning.startswith("runbooks[0].runbook: no runbook named 'disk_guard' is loaded")
    assert "later bindings are never tried in its place" in warning


def test_an_unloaded_runbook_without_a_match_of_its_own_may_be_meant_for_any_alert(
    tmp_path: Path,
):
    bindings = [{"runbook": "disk_guard"}, {"runbook": "restart_vm"}]
    config = load_config(policy_file(tmp_path, runbooks=bindings))

    for alert in (DISK_ALERT, CPU_ALERT):
        choice, warning = choose_runbook(config, alert, catalog())
        assert choice is None
        assert warning is not None and "runbooks[0].runbook" in warning


def test_an_alert_the_unloaded_binding_does_not_match_still_gets_its_runbook(tmp_path: Path):
    # disk_guard's binding says which alerts it is for; a CPU alert is not one.
    config = load_config(disk_guard_policy(tmp_path))

    choice, warning = choose_runbook(config, CPU_ALERT, catalog())

    assert choice is not None and choice.name == "restart_vm"
    assert warning is None
