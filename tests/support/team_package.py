"""A team's runbook package, installed the cheapest real way: its modules and
a `<dist>-<version>.dist-info/` (METADATA, entry_points.txt, top_level.txt)
in one folder. A folder like that on sys.path (or PYTHONPATH) is an installed
distribution to importlib.metadata, entry points and all.

And what runs against it: the `stanch` command in a subprocess that sees the
folder, and policies binding the team's runbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.plans import policy_file

# The review's runbook (reviews/authoring.md §2): read the disk usage through
# the team's own activity, then tag the VM. Contained on success.
DISK_GUARD = '''"""disk_guard: a team's runbook for a VM whose disk is filling up."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.activities.resources import ResourceActivities
    from stanch.models.azure import TagChange, TagRemoval, VmRef
    from stanch.models.config import AlertMatch
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import Runbook
    from {module}.activities import DiskActivities


@workflow.defn(name="{name}")
class DiskGuard(Runbook):
    spec = RunbookSpec(
        name="{name}",
        description="Read the OS disk, then tag the VM for the team ({module}).",
        risk=Risk.MEDIUM,
        author="myteam",
        matches=AlertMatch(rules=["*disk*"], resource_types=["microsoft.compute/virtualmachines"]),
        approvals={{"tag": Risk.MEDIUM}},
        outcome=RunbookOutcome.CONTAINED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        disk = await self.step(
            "read os disk", DiskActivities.read_os_disk, VmRef(resource_id=self.resource_id)
        )
        await self.approval("tag")
        await self.act(
            "tag disk-guard",
            ResourceActivities.merge_tags,
            TagChange(resource_id=self.resource_id, tags={{"stanch.disk-guard": disk.name}}),
            undo=lambda _: (
                ResourceActivities.remove_tags,
                TagRemoval(resource_id=self.resource_id, names=["stanch.disk-guard"]),
            ),
        )
        return RunbookOutcome.CONTAINED
'''

# The team's activity: built by a factory from the worker's ActivityContext,
# reading the VM through the worker's own Azure clients.
ACTIVITIES = '''"""The team's activities: what its runbooks need that stanch does not ship."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from stanch.activities.extensions import ActivityContext
from stanch.models.azure import ResourceId, VmRef


class OsDisk(BaseModel):
    name: str
    read_by: str  # the task queue of the worker whose context built the activity


class DiskActivities:
    def __init__(self, context: ActivityContext) -> None:
        self._context = context

    @activity.defn(name="{module}.read_os_disk")
    async def read_os_disk(self, ref: VmRef) -> OsDisk:
        rid = ResourceId.parse(ref.resource_id)
        compute = self._context.azure.compute(rid.subscription)
        vm = await compute.virtual_machines.get(rid.resource_group, rid.name)
        disk = vm.storage_profile.os_disk if vm.storage_profile else None
        name = (disk.name if disk else None) or f"{{rid.name}}-osdisk"
        return OsDisk(name=name, read_by=self._context.settings.task_queue)


def team_activities(context: ActivityContext) -> list[object]:
    return [DiskActivities(context).read_os_disk]


stanch_activities = team_activities  # what runbook_packages: finds
'''


def install_team_package(
    root: Path,
    module: str = "myteam_runbooks",
    dist: str = "myteam-runbooks",
    version: str = "1.2.3",
    runbook: str = "disk_guard",
    entry_points: dict[str, dict[str, str]] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Writes `module/` (the disk_guard runbook and the team's activity) and its
    dist-info into `root`; returns `root`. Default entry points: the runbook
    module and the activity factory."""
    package = root / module
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f'"""{dist}: runbooks of my team."""\n')
    (package / f"{runbook}.py").write_text(DISK_GUARD.format(module=module, name=runbook))
    (package / "activities.py").write_text(ACTIVITIES.format(module=module))
    for relative, text in (extra_files or {}).items():
        (package / relative).write_text(text)
    if entry_points is None:
        entry_points = {
            "stanch.runbooks": {runbook: f"{module}.{runbook}"},
            "stanch.activities": {module: f"{module}.activities:team_activities"},
        }
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nRequires-Dist: stanch\n"
    )
    (info / "top_level.txt").write_text(f"{module}\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in values.items())
            for group, values in entry_points.items()
        )
    )
    return root


# The review's dangerous order: disk_guard bound ahead of restart_vm, whose
# own match (a platform alert on a VM) also catches a disk alert.
DISK_GUARD_FIRST = [
    {
        "runbook": "disk_guard",
        "match": {"rules": ["*disk*"], "resource_types": ["microsoft.compute/virtualmachines"]},
    },
    {"runbook": "restart_vm"},
]


def disk_guard_policy(tmp_path: Path, **overrides: Any) -> Path:
    """tmp_path/stanch.yaml binding DISK_GUARD_FIRST."""
    return policy_file(tmp_path, runbooks=DISK_GUARD_FIRST, **overrides)


def rewrite_policy(path: Path, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def run_stanch_with(
    paths: list[Path],
    cwd: Path,
    *args: str,
    timeout: float = 120,
    settings: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`stanch ARGS` in a process whose sys.path also holds `paths` (where the
    team's packages are installed), with no STANCH_* settings of this process
    but `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env.update(settings or {})
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
