"""An incident stuck on a code change (issue 13 item 5): the incident
workflow itself no longer replays after a deploy. Its queries fail, so the
API and `stanch show` answer from what describe and its start say, marked
stuck with the worker's reason; every request to it is refused at once (409,
CLI exit 2) and leaves its history as it was."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.support.before_deploy import OpenIncident
from tests.support.changed_code.incident_waits_first import IncidentWorkflowWaitsFirst
from tests.support.cli import run_stanch
from tests.support.code_change import REPO, cli_state, history_events
from tests.support.plans import API_TOKENS, auth

AT_ONCE = 5.0  # seconds, with room for a loaded machine


async def test_a_stuck_incident_is_shown_from_its_start_and_refuses_requests(
    before_deploy: OpenIncident, tmp_path: Path
):
    incident, handle, base = before_deploy.incident, before_deploy.handle, before_deploy.base
    deploy = before_deploy.deploy([IncidentWorkflowWaitsFirst])
    async with httpx.AsyncClient(timeout=30) as http, deploy:
        before = await history_events(handle)

        began = time.monotonic()
        ack = await http.post(f"{base}/ack", json={}, headers=auth("responder"))
        assert ack.status_code == 409, ack.text
        assert time.monotonic() - began < AT_ONCE
        message = ack.json()["message"]
        assert message.startswith(f"stuck: incident ({handle.id})")
        assert "[TMPRL1100]" in message and "stanch runbook check" in message

        shown = await http.get(base, headers=auth("viewer"))
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["stuck"]["workflow_type"] == "IncidentWorkflow"
        assert body["state"]["incident_id"] == incident
        assert body["state"]["resources"], "what it was opened for is still shown"
        assert body["pending_approvals"] == []

        approve = await http.post(
            f"{base}/approvals/isolate/approve", json={}, headers=auth("approver")
        )
        assert approve.status_code == 409 and "stuck: incident" in approve.text

        state = cli_state(tmp_path / "cli", before_deploy.settings, API_TOKENS["responder"])
        show = await asyncio.to_thread(run_stanch, state, REPO, "show", incident)
        assert show.returncode == 0, show.stderr
        assert f"stuck: incident ({handle.id})" in show.stdout
        acked = await asyncio.to_thread(run_stanch, state, REPO, "ack", incident)
        assert acked.returncode == 2, acked.stdout + acked.stderr
        assert "stuck: incident" in acked.stderr and "Traceback" not in acked.stderr

        assert await history_events(handle) == before, "the refusals changed nothing"
