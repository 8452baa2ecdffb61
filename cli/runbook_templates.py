"""What `stanch runbook new` writes: a runbook module (the same in a team's
package and in stanch's tree) and the tests beside it. Placeholders are
__NAME__ (the runbook's name), __CLASS__, __TITLE__; the rest is written as is,
and is ruff-clean (check and format) as written (tests/cli/test_runbook_new.py)."""

from __future__ import annotations

RUNBOOK = '''"""__TITLE__: say what this runbook is for and when it is the right response."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.activities.health import HealthActivities
    from stanch.activities.resources import ResourceActivities
    from stanch.models.azure import ResourceRef, TagChange, TagRemoval
    from stanch.models.config import AlertMatch
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import Runbook


class __CLASS__Params(BaseModel):
    # What stanch.yaml may set: `runbooks: [{runbook: __NAME__, params: {label: x}}]`.
    label: str = "__NAME__"


@workflow.defn(name="__NAME__")
class __CLASS__(Runbook):
    spec = RunbookSpec(
        name="__NAME__",
        description="TODO: one line an on-call engineer reads in `stanch runbook list`.",
        risk=Risk.MEDIUM,
        author="TODO: you",
        matches=AlertMatch(resource_types=["microsoft.compute/virtualmachines"]),
        approvals={"apply": Risk.MEDIUM},
        outcome="mitigated",
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        params = self.parameters(__CLASS__Params)
        resource = ResourceRef(resource_id=self.resource_id)
        health = await self.step("check health", HealthActivities.get_availability, resource)
        if health.state == "Available":
            return RunbookOutcome.NOT_NEEDED
        await self.approval("apply")
        await self.act(
            "label the resource",
            ResourceActivities.merge_tags,
            TagChange(resource_id=self.resource_id, tags={"stanch.runbook": params.label}),
            undo=lambda _: (
                ResourceActivities.remove_tags,
                TagRemoval(resource_id=self.resource_id, names=["stanch.runbook"]),
            ),
        )
        return RunbookOutcome.MITIGATED
'''

# The in-tree test: stanch's own fixtures (tests/conftest.py) and helpers.
IN_TREE_TEST = '''"""__TITLE__: tested on the time-skipping server against azuresim.
The fixtures (ts_env, runbooks: a worker with every runbook, sim, started)
are in tests/conftest.py; the helpers in stanch.testing."""

from __future__ import annotations

from stanch.models.risk import Risk
from stanch.models.runbook import RunbookOutcome
from stanch.testing.estate import VM1, VM2
from stanch.testing.runbooks import approval_plan, journal_mutations, result_of, start_runbook


async def test___NAME___applies_its_change_after_approval(ts_env, runbooks, sim, started):
    plan = approval_plan(auto_approve=[Risk.MEDIUM])
    queue = runbooks.task_queue
    handle = await start_runbook(started, ts_env.client, queue, "__NAME__", VM1, plan=plan)
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert [method for method, _ in journal_mutations(sim)] == ["PATCH"]


async def test___NAME___does_nothing_to_a_healthy_resource(ts_env, runbooks, sim, started):
    handle = await start_runbook(started, ts_env.client, runbooks.task_queue, "__NAME__", VM2)
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.NOT_NEEDED
    assert journal_mutations(sim) == []
'''

# A team package's test: the stanch_* fixtures of stanch's pytest plugin.
TEAM_TEST = '''"""__TITLE__: tested on the time-skipping server against azuresim's default
world (VM1 is unavailable, VM2 healthy). The stanch_* fixtures come from
stanch's pytest plugin (stanch.testing), installed with stanch[testing]."""

from __future__ import annotations

from stanch.models.runbook import RunbookOutcome
from stanch.testing import VM1, VM2, journal_mutations, result_of


async def test___NAME___labels_a_failing_vm_once_approved(stanch_worker, stanch_sim):
    handle = await stanch_worker.start("__NAME__", VM1)
    await stanch_worker.approve(handle, "apply", by="carol")  # carol holds the approver role
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert journal_mutations(stanch_sim) == [("PATCH", "tags/default")]


async def test___NAME___leaves_a_healthy_vm_alone(stanch_worker, stanch_sim):
    result = await result_of(await stanch_worker.start("__NAME__", VM2))
    assert result.outcome is RunbookOutcome.NOT_NEEDED
    assert journal_mutations(stanch_sim) == []


async def test___NAME___unanswered_is_denied_and_changes_nothing(stanch_worker, stanch_sim):
    # Awaiting the result lets the server skip the gate's 30 minutes at once.
    result = await result_of(await stanch_worker.start("__NAME__", VM1))
    assert result.outcome is RunbookOutcome.DENIED
    assert journal_mutations(stanch_sim) == []
'''


def render(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace(f"__{key.upper()}__", value)
    return template
