"""A runbook stuck on a code change (issue 13, the second "Shown by"; the
review's section 5): quarantine_vm waits at its gate, the worker restarts
with a naive change (a new step before the gate), and the runbook cannot
replay. `stanch show`, the API and the dashboard say stuck with the worker's
reason instead of "waiting"; an approval is refused at once (409, CLI exit
2), before and after the runbook first fails its workflow task, and nothing
it sent enters the runbook's history."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle

from stanch.client.errors import Refused
from stanch.client.incidents import fetch_incident
from stanch.client.stuck import stuck_workflow
from stanch.client.updates import send_update
from stanch.harness.waiting import eventually
from stanch.models.runbook import ApprovalDecision
from stanch.workflows.runbook import Runbook
from tests.support.before_deploy import OpenIncident
from tests.support.changed_code.quarantine_new_step import QuarantineVmLooksForDiskErrors
from tests.support.cli import run_stanch
from tests.support.code_change import REPO, cli_state, history_events
from tests.support.plans import API_TOKENS, auth

AT_ONCE = 5.0  # seconds: "refused at once", with room for a loaded machine


async def test_a_runbook_stuck_on_a_code_change_says_so_and_refuses_decisions(
    before_deploy: OpenIncident,
):
    deploy = before_deploy.deploy([QuarantineVmLooksForDiskErrors])
    async with httpx.AsyncClient(timeout=30) as http, deploy:
        await stuck_before_it_is_woken(before_deploy, http)
        await stuck_after_its_task_failed(before_deploy, http)


async def stuck_before_it_is_woken(opened: OpenIncident, http: httpx.AsyncClient) -> None:
    """Waiting at its gate, the runbook has no workflow task to fail yet: a
    replay (a query) finds it out, and a decision is refused without waking
    it (an update would hold for ~20 s and leave a failed task behind)."""
    stack, incident, runbook = opened.stack, opened.incident, opened.runbook
    before = await history_events(runbook)
    detail = await fetch_incident(stack.client, incident)
    assert detail.stuck is not None, "shown as waiting, not stuck"
    assert detail.stuck.workflow_id == runbook.id
    assert "[TMPRL1100]" in detail.stuck.reason

    base = f"{stack.url}/api/incidents/{incident}"
    shown = (await http.get(base, headers=auth("viewer"))).json()
    assert shown["stuck"]["workflow_id"] == runbook.id
    assert shown["pending_approvals"] == [], "no approve button for a runbook that cannot act"

    began = time.monotonic()
    refused = await http.post(
        f"{base}/approvals/isolate/approve", json={}, headers=auth("approver")
    )
    took = time.monotonic() - began
    assert refused.status_code == 409, refused.text
    assert "stuck: runbook quarantine_vm" in refused.json()["message"]
    assert "stanch runbook check" in refused.json()["message"]
    assert took < AT_ONCE, f"refused after {took:.1f}s"
    assert await history_events(runbook) == before, (
        "the refusal left nothing in the runbook's history"
    )
    assert await stuck_workflow(stack.client, runbook.id) is None, "it was not woken"


async def stuck_after_its_task_failed(opened: OpenIncident, http: httpx.AsyncClient) -> None:
    """Woken (here by a harmless signal), it fails its workflow task on every
    attempt: describe and the history say so, every view shows it, and every
    way of deciding is refused at once."""
    stack, incident, runbook = opened.stack, opened.incident, opened.runbook
    await runbook.signal(Runbook.refresh_decision_keys)

    async def failing() -> bool:
        return await stuck_workflow(stack.client, runbook.id) is not None

    await eventually(failing, 30, f"{runbook.id} failing its workflow task")
    found = await stuck_workflow(stack.client, runbook.id)
    assert found is not None and found.cause == "NON_DETERMINISTIC_ERROR"
    assert found.attempts is not None and found.attempts >= 2
    assert found.workflow_type == "quarantine_vm"
    await settled_failing(runbook)
    before = await history_events(runbook, tasks_too=False)

    base = f"{stack.url}/api/incidents/{incident}"
    shown = (await http.get(base, headers=auth("viewer"))).json()
    assert shown["stuck"]["cause"] == "NON_DETERMINISTIC_ERROR"
    assert "a code change broke it" in shown["stuck"]["summary"]
    listing = (await http.get(f"{stack.url}/api/incidents", headers=auth("viewer"))).json()
    row = next(r for r in listing["incidents"] if r["incident_id"] == incident)
    assert row["stuck"]["workflow_id"] == runbook.id
    page = await http.get(f"{stack.url}/incidents/{incident}", headers=auth("viewer"))
    assert page.status_code == 200
    assert "stuck: runbook quarantine_vm" in page.text and "Approve</button>" not in page.text

    state = cli_state(opened.settings.state_dir / "cli", opened.settings, API_TOKENS["approver"])
    # In a thread: this test's event loop runs the worker that must answer.
    show = await asyncio.to_thread(run_stanch, state, REPO, "show", incident)
    assert show.returncode == 0, show.stderr
    assert "stuck: runbook quarantine_vm" in show.stdout and "[TMPRL1100]" in show.stdout
    assert "APPROVAL NEEDED" not in show.stdout
    assert "quarantine_vm (stuck)" in show.stdout

    began = time.monotonic()
    refused = await http.post(
        f"{base}/approvals/isolate/approve", json={}, headers=auth("approver")
    )
    assert refused.status_code == 409 and "stuck" in refused.json()["message"]
    assert time.monotonic() - began < AT_ONCE
    approve = await asyncio.to_thread(run_stanch, state, REPO, "approve", incident, "isolate")
    assert approve.returncode == 2, approve.stdout + approve.stderr
    assert "stuck: runbook quarantine_vm" in approve.stderr
    assert "Traceback" not in approve.stderr

    # Past the checks (a decision that raced the failure): Temporal's own
    # refusal reads the same.
    decision = ApprovalDecision(step="isolate", by="carol")
    with pytest.raises(
        Refused, match=r"stuck: .* \(a code change broke it: run `stanch runbook check`\)"
    ):
        answer = await send_update(runbook, Runbook.approve, decision)
        raise AssertionError(f"an update to a stuck runbook was answered: {answer}")
    after = await history_events(runbook, tasks_too=False)
    assert after == before, "nothing of the refused decisions entered history"


async def settled_failing(handle: WorkflowHandle[Any, Any]) -> None:
    """Until its failing task is between attempts: the history it then has is
    what a refused decision must leave as it was."""

    async def between_attempts() -> bool:
        raw = (await handle.describe()).raw_description
        return raw.pending_workflow_task.attempt >= 2

    await eventually(between_attempts, 30, f"{handle.id} retrying its workflow task", every=0.1)
