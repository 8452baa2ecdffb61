"""A log alert bound to block_ip, through the real gateway over HTTP, a worker
on the dev server and azuresim: the address in the alert's dimensions reaches
the runbook, is blocked once an approver says so through the on-call API, and
release takes it back. An alert naming an address no one may block changes
nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from stanch.azuresim import AzureSim
from stanch.client.ids import workflow_id_for
from stanch.harness.waiting import eventually
from stanch.models.network_rules import block_rule_name
from stanch.testing.estate import RG, SAMPLES
from tests.support.nsg import attach_to_nic, rules_of, team_nsg, team_rules_intact
from tests.support.plans import REMEDIATION, auth, policy_file
from tests.support.stack import running_stack

NIC2 = f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-web-2-nic"
BINDING = {
    "runbook": "block_ip",
    "match": {"rules": ["ssh-brute-force*"], "monitoring_services": ["Log Alerts V2"]},
    "params": {"address_dimensions": ["ClientIP"], "port": 22},
}


def brute_force_alert(client_ip: str) -> dict[str, Any]:
    """The shipped example, under a rule of its own (a fresh incident)."""
    body = json.loads((SAMPLES / "block_ip_log_alert_v2.json").read_text())
    body["data"]["essentials"]["alertRule"] = f"ssh-brute-force-{uuid.uuid4().hex[:6]}"
    dimensions = body["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"]
    dimensions[0]["value"] = client_ip
    return body


def rule_writes(sim: AzureSim) -> list[tuple[str, str]]:
    return [
        (c["method"], c["path"].rsplit("/", 1)[-1])
        for c in sim.journal.calls()
        if c["mutation"] and "/securityRules/" in c["path"]
    ]


async def detail(http: httpx.AsyncClient, url: str, incident: str) -> dict[str, Any]:
    answer = await http.get(f"{url}/api/incidents/{incident}", headers=auth("viewer"))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def pending(http: httpx.AsyncClient, url: str, incident: str, step: str) -> dict[str, Any]:
    async def waiting() -> dict[str, Any] | None:
        shown = await detail(http, url, incident)
        steps = [p["step"] for p in shown["pending_approvals"]]
        return shown if step in steps else None

    shown: dict[str, Any] = await eventually(waiting, 30, f"{step!r} pending on {incident}")
    return shown


async def test_a_log_alert_bound_to_block_ip_blocks_its_address_once_approved(
    dev_env, tmp_path: Path, task_queue: str, azure, sim: AzureSim
):
    attach_to_nic(sim, NIC2, team_nsg(sim))
    config = policy_file(tmp_path, **{**REMEDIATION, "runbooks": [BINDING]})
    async with (
        running_stack(dev_env, tmp_path, task_queue, config, azure, sim) as stack,
        httpx.AsyncClient(timeout=30) as http,
    ):
        sent = await stack.post_alert(http, brute_force_alert("203.0.113.7"))
        assert sent.status_code == 202, sent.text
        incident = sent.json()["incident_id"]
        base = f"{stack.url}/api/incidents/{incident}"
        try:
            shown = await pending(http, stack.url, incident, "block")
            assert shown["state"]["runbook"]["runbook"] == "block_ip"
            assert shown["state"]["dimensions"]["ClientIP"] == "203.0.113.7"
            assert rule_writes(sim) == [], "nothing blocked before the approval"

            viewer = await http.post(
                f"{base}/approvals/block/approve", json={}, headers=auth("viewer")
            )
            assert viewer.status_code == 403 and rule_writes(sim) == []

            approved = await http.post(
                f"{base}/approvals/block/approve",
                json={"comment": "brute force"},
                headers=auth("approver"),
            )
            assert approved.status_code == 200, approved.text
            name = block_rule_name(incident, "203.0.113.7/32", 22, "*", "Inbound")

            async def blocked() -> bool:
                return name in rules_of(sim)

            await eventually(blocked, 30, "the block rule in azuresim's NSG")
            held = rules_of(sim)[name]
            assert held["access"] == "Deny" and held["sourceAddressPrefix"] == "203.0.113.7/32"
            assert held["destinationPortRange"] == "22"

            async def contained() -> bool:
                state = (await detail(http, stack.url, incident))["state"]
                return state["status"] == "contained"

            await eventually(contained, 30, "the incident contained")
            released = await http.post(
                f"{base}/release", json={"reason": "address reassigned"}, headers=auth("approver")
            )
            assert released.status_code == 200, released.text
            await pending(http, stack.url, incident, "release")
            lifted = await http.post(
                f"{base}/approvals/release/approve", json={}, headers=auth("admin")
            )
            assert lifted.status_code == 200, lifted.text

            async def lifted_in_azure() -> bool:
                return name not in rules_of(sim)

            await eventually(lifted_in_azure, 30, "the block rule removed")
            assert rule_writes(sim) == [("PUT", name), ("DELETE", name)]
            assert team_rules_intact(sim) and len(rules_of(sim)) == 3
        finally:
            await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")


async def test_an_alert_naming_azures_own_address_changes_nothing(
    dev_env, tmp_path: Path, task_queue: str, azure, sim: AzureSim
):
    attach_to_nic(sim, NIC2, team_nsg(sim))
    config = policy_file(tmp_path, **{**REMEDIATION, "runbooks": [BINDING]})
    async with (
        running_stack(dev_env, tmp_path, task_queue, config, azure, sim) as stack,
        httpx.AsyncClient(timeout=30) as http,
    ):
        sent = await stack.post_alert(http, brute_force_alert("168.63.129.16"))
        assert sent.status_code == 202, sent.text
        incident = sent.json()["incident_id"]
        try:

            async def finished() -> dict[str, Any] | None:
                runbook = (await detail(http, stack.url, incident))["state"]["runbook"]
                return runbook if runbook and runbook.get("outcome") else None

            runbook = await eventually(finished, 30, "block_ip finished")
            assert runbook["outcome"] == "failed" and runbook["pending"] is None
            shown = await detail(http, stack.url, incident)
            assert shown["pending_approvals"] == [], "nobody was asked"
            assert any("Azure's platform address" in e["summary"] for e in shown["timeline"])
            assert [c for c in sim.journal.calls() if c["mutation"]] == [], "nothing changed"
            assert len(rules_of(sim)) == 3
        finally:
            await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
