"""Issue 13, item 1: runbooks and activities from a team's installed package
(entry points) and from the policy's runbook_packages, shown with package and
version; two runbooks with one name, or a package that will not import, is a
configuration error naming where each came from. The `stanch` command runs
in a subprocess that sees a real installed distribution (tests/support/
team_package.py); a team runbook calls the team's activity on a real worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_clients import AzureClients
from stanch.activities.extensions import ActivityConflict, LoadedActivity, registrable
from stanch.azuresim import AzureSim
from stanch.models.risk import Risk
from stanch.models.runbook import RunbookOutcome
from stanch.models.settings import Settings
from stanch.runbooks.registry import loaded_runbooks
from stanch.testing.estate import VM1
from stanch.testing.runbooks import approval_plan, journal_mutations, result_of, start_runbook
from stanch.testing.started import Started
from tests.support.plans import policy_file
from tests.support.team_package import (
    disk_guard_policy,
    install_team_package,
    run_stanch_with,
)


def test_runbook_list_shows_a_team_runbook_with_its_package_and_version(tmp_path: Path):
    team = install_team_package(tmp_path / "site")

    listed = run_stanch_with([team], tmp_path, "runbook", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["disk_guard"]["package"] == "myteam-runbooks"
    assert rows["disk_guard"]["version"] == "1.2.3"
    assert rows["disk_guard"]["source"] == "myteam_runbooks.disk_guard"
    assert rows["disk_guard"]["origin"] == (
        "entry point stanch.runbooks: disk_guard = myteam_runbooks.disk_guard"
    )
    assert rows["disk_guard"]["approvals"] == {"tag": "medium"}
    assert rows["restart_vm"]["package"] == "stanch"
    assert rows["restart_vm"]["source"] == "stanch.runbooks.restart_vm"
    text = run_stanch_with([team], tmp_path, "runbook", "list")
    assert "from myteam-runbooks 1.2.3 (myteam_runbooks.disk_guard" in text.stdout


def test_without_the_package_installed_the_team_runbook_is_not_listed(tmp_path: Path):
    listed = run_stanch_with([], tmp_path, "runbook", "list", "--json")

    assert listed.returncode == 0, listed.stderr
    assert "disk_guard" not in {row["name"] for row in json.loads(listed.stdout)}


def test_config_check_names_a_binding_to_a_runbook_that_is_not_loaded(tmp_path: Path):
    policy = disk_guard_policy(tmp_path)

    refused = run_stanch_with([], tmp_path, "config", "check", str(policy))

    assert refused.returncode == 2, refused.stderr
    assert f"{policy}: invalid\n" in refused.stderr
    assert (
        "runbooks[0].runbook: no runbook named 'disk_guard' is loaded (loaded: " in refused.stderr
    )
    assert "restart_vm, " in refused.stderr  # the loaded runbooks are named
    assert "add its package to runbook_packages or install it)" in refused.stderr
    # Installed, the same policy is fine.
    team = install_team_package(tmp_path / "site")
    ok = run_stanch_with([team], tmp_path, "config", "check", str(policy))
    assert ok.returncode == 0, ok.stderr


def test_policy_runbook_packages_loads_a_module_no_installer_put_there(tmp_path: Path):
    # A plain folder on the path: no dist-info, no entry points; only the
    # policy names it.
    folder = install_team_package(tmp_path / "site", entry_points={})
    for info in folder.glob("*.dist-info"):
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    policy = disk_guard_policy(tmp_path)
    assert run_stanch_with([folder], tmp_path, "config", "check", str(policy)).returncode == 2

    policy = disk_guard_policy(tmp_path, runbook_packages=["myteam_runbooks"])
    ok = run_stanch_with([folder], tmp_path, "config", "check", str(policy))
    listed = run_stanch_with(
        [folder], tmp_path, "runbook", "list", "--json", "--config", str(policy)
    )

    assert ok.returncode == 0, ok.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["disk_guard"]["package"] == "(not installed)"
    assert rows["disk_guard"]["source"] == "myteam_runbooks.disk_guard"
    assert rows["disk_guard"]["origin"] == "runbook_packages[0]"


def test_two_runbooks_with_one_name_is_an_error_naming_both_packages(tmp_path: Path):
    site = tmp_path / "site"
    install_team_package(site)
    install_team_package(site, module="otherteam_ops", dist="otherteam-ops", version="0.4.0")
    policy = policy_file(tmp_path)

    listed = run_stanch_with([site], tmp_path, "runbook", "list")
    checked = run_stanch_with([site], tmp_path, "config", "check", str(policy))

    for refused in (listed, checked):
        assert refused.returncode == 2, refused.stderr
        assert "runbook 'disk_guard' is defined twice" in refused.stderr
        assert "myteam-runbooks 1.2.3 (myteam_runbooks.disk_guard.DiskGuard" in refused.stderr
        assert "otherteam-ops 0.4.0 (otherteam_ops.disk_guard.DiskGuard" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_a_team_runbook_may_not_take_a_built_in_name(tmp_path: Path):
    site = install_team_package(tmp_path / "site", runbook="restart_vm")

    refused = run_stanch_with([site], tmp_path, "runbook", "list")

    assert refused.returncode == 2
    assert "runbook 'restart_vm' is defined twice: by stanch " in refused.stderr
    assert "myteam-runbooks 1.2.3 (myteam_runbooks.restart_vm.DiskGuard" in refused.stderr


def test_a_runbook_package_that_will_not_import_is_named_with_its_error(tmp_path: Path):
    broken = tmp_path / "site"
    broken.mkdir()
    (broken / "broken_runbooks.py").write_text("import not_a_module_anywhere\n")
    policy = policy_file(tmp_path, runbook_packages=["broken_runbooks"])

    refused = run_stanch_with([broken], tmp_path, "config", "check", str(policy))

    assert refused.returncode == 2
    assert (
        "runbook_packages[0]: cannot import 'broken_runbooks': ModuleNotFoundError: "
        "No module named 'not_a_module_anywhere'"
    ) in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_entry_point_that_will_not_import_is_named_with_its_package(tmp_path: Path):
    site = install_team_package(
        tmp_path / "site",
        entry_points={"stanch.runbooks": {"disk_guard": "myteam_runbooks.missing"}},
    )

    refused = run_stanch_with([site], tmp_path, "runbook", "list")

    assert refused.returncode == 2
    assert (
        "entry point stanch.runbooks: disk_guard = myteam_runbooks.missing "
        "(myteam-runbooks 1.2.3): ModuleNotFoundError"
    ) in refused.stderr


def test_two_activities_with_one_name_is_an_error_naming_both():
    from tests.support import team_activities

    first = LoadedActivity(team_activities.ping, "ping", "entry point stanch.activities: a")
    second = LoadedActivity(team_activities.other_ping, "ping", "runbook_packages[0]")

    with pytest.raises(ActivityConflict) as conflict:
        registrable([], [first, second])

    (problem,) = conflict.value.problems
    assert "activity 'ping' is defined twice: by entry point stanch.activities: a" in problem
    assert "tests.support.team_activities.ping" in problem
    assert "by runbook_packages[0] (tests.support.team_activities.other_ping)" in problem
    # The same callable reached twice is one activity.
    assert registrable([], [first, first]) == [team_activities.ping]


async def test_a_team_runbook_runs_the_teams_activity_on_a_real_worker(
    ts_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    azure: AzureClients,
    sim: AzureSim,
    started: Started,
    monkeypatch: pytest.MonkeyPatch,
):
    from stanch.worker import activities_for, workflows_for

    # Its own module name: this process keeps what it imported.
    site = install_team_package(tmp_path / "site", module="worker_team", dist="worker-team")
    monkeypatch.syspath_prepend(str(site))
    # Found twice (its entry point and the policy): registered once.
    packages = ["worker_team"]
    settings = Settings(
        config=policy_file(tmp_path, runbook_packages=packages),
        state_dir=tmp_path,
        task_queue=task_queue,
    )
    workflows = workflows_for(packages)
    activities = activities_for(settings, azure, packages)
    assert [r.package for r in loaded_runbooks(packages) if r.spec.name == "disk_guard"] == [
        "worker-team"
    ]

    async with Worker(
        ts_env.client, task_queue=task_queue, workflows=workflows, activities=activities
    ):
        handle = await start_runbook(
            started,
            ts_env.client,
            task_queue,
            "disk_guard",
            VM1,
            plan=approval_plan(auto_approve=[Risk.MEDIUM]),
        )
        result = await result_of(handle)

    assert result.outcome is RunbookOutcome.CONTAINED, result.summary
    read = next(step for step in result.steps if step.name == "read os disk")
    assert read.status == "succeeded"
    assert task_queue in (read.detail or "")  # the worker's own context built the activity
    assert [method for method, _ in journal_mutations(sim)] == ["PATCH"]
    vm_reads = [
        call
        for call in sim.journal.calls()
        if call["method"] == "GET" and call["path"].lower().endswith("/virtualmachines/vm-web-1")
    ]
    assert vm_reads, "the team's activity read the VM through the worker's Azure clients"


async def test_a_policy_module_contributes_its_stanch_activities(
    tmp_path: Path, azure: AzureClients, monkeypatch: pytest.MonkeyPatch
):
    from stanch.activities.extensions import ActivityContext, extension_activities
    from stanch.stores.evidence import EvidenceStore

    # No dist-info, no entry point: only the policy names the module, whose
    # package exports the factory.
    site = install_team_package(
        tmp_path / "site",
        module="policy_team",
        entry_points={},
        extra_files={"__init__.py": "from policy_team.activities import stanch_activities\n"},
    )
    for info in site.glob("*.dist-info"):
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    monkeypatch.syspath_prepend(str(site))
    settings = Settings(state_dir=tmp_path, task_queue="team-queue")
    context = ActivityContext(azure, settings, EvidenceStore(tmp_path / "evidence"))

    assert extension_activities(context, []) == []
    (found,) = extension_activities(context, ["policy_team"])

    assert found.name == "policy_team.read_os_disk"
    assert found.origin == "runbook_packages[0] (policy_team.stanch_activities)"
