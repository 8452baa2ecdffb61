"""block_traffic / unblock_traffic with the real SDK clients against azuresim:
one rule per incident and address, at a free priority, never touching a rule
stanch did not write, safe to retry (Temporal's real retries, with faults)."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_errors import INVALID_REQUEST
from stanch.activities.network_rules import (
    NO_FREE_PRIORITY,
    NO_NETWORK_SECURITY_GROUP,
    NOT_STANCH_RULE,
    NetworkRuleActivities,
)
from stanch.azuresim.faults import Fault
from stanch.models.network_rules import (
    BlockedRule,
    BlockRequest,
    RuleTargetRequest,
    block_description,
    block_rule_name,
)
from stanch.models.settings import Settings
from stanch.testing.estate import NIC1, RG, VM1, VM2
from stanch.worker import azure_activities
from tests.support.azure_probe import AzureProbe, ProbeInput, ProbeResult
from tests.support.nsg import (
    NSG_WEB,
    attach_to_nic,
    attach_to_subnet,
    rule,
    rules_of,
    team_nsg,
    team_rules_intact,
)

env = ActivityEnvironment
NIC2 = f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-web-2-nic"
WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-ops/providers/"
    "Microsoft.OperationalInsights/workspaces/law-ops"
)


def mutations(sim: Any, since: int = 0) -> list[tuple[str, str, int | None]]:
    return [
        (c["method"], c["path"].rsplit("/", 1)[-1], c["status"])
        for c in sim.journal.calls(since)
        if c["mutation"]
    ]


def last_seq(sim: Any) -> int:
    calls = sim.journal.calls()
    return calls[-1]["seq"] if calls else 0


def block(incident: str = "inc-1", address: str | None = "203.0.113.7", **kw: Any) -> BlockRequest:
    return BlockRequest(incident_id=incident, nsg_id=NSG_WEB, address=address, **kw)


async def test_block_then_unblock_an_address_leaving_the_team_rules_alone(sim, azure):
    team_nsg(sim)
    rules = NetworkRuleActivities(azure)
    seq = last_seq(sim)

    blocked = await env().run(rules.block_traffic, block())
    name = block_rule_name("inc-1", "203.0.113.7/32", None, "*", "Inbound")
    assert blocked.rule_name == name and blocked.created and blocked.request_id
    # 100 and 101 hold the team's inbound rules (100 outbound does not count).
    assert blocked.priority == 102
    held = rules_of(sim)[name]
    assert held["access"] == "Deny" and held["direction"] == "Inbound"
    assert held["sourceAddressPrefix"] == "203.0.113.7/32"
    assert held["destinationPortRange"] == "*" and held["destinationAddressPrefix"] == "*"
    assert held["description"] == block_description("inc-1", "203.0.113.7/32", None, "*", "Inbound")
    assert mutations(sim, seq) == [("PUT", name, 201)]

    again = await env().run(rules.block_traffic, block())  # a retry, or a rerun
    assert not again.created and again.priority == 102
    assert len(mutations(sim, seq)) == 1, "the retry found its rule and wrote nothing"

    removed = await env().run(rules.unblock_traffic, blocked)
    assert removed.removed and name not in rules_of(sim)
    gone = await env().run(rules.unblock_traffic, blocked)  # a retried undo
    assert not gone.removed
    assert mutations(sim, seq) == [("PUT", name, 201), ("DELETE", name, 200)]
    assert team_rules_intact(sim) and len(rules_of(sim)) == 3


async def test_a_port_an_outbound_block_and_a_cidr_are_rules_of_their_own(sim, azure):
    team_nsg(sim)
    rules = NetworkRuleActivities(azure)
    port_only = await env().run(rules.block_traffic, block(address=None, port=3389))
    outbound = await env().run(
        rules.block_traffic, block(address="198.51.100.0/24", direction="Outbound", port=443)
    )
    ipv6 = await env().run(rules.block_traffic, block(address="2001:db8::/48", protocol="Tcp"))
    held = rules_of(sim)
    assert held[port_only.rule_name]["sourceAddressPrefix"] == "*"
    assert held[port_only.rule_name]["destinationPortRange"] == "3389"
    assert held[outbound.rule_name]["destinationAddressPrefix"] == "198.51.100.0/24"
    assert held[outbound.rule_name]["sourceAddressPrefix"] == "*"
    assert outbound.priority == 101, "outbound: only the team's 100 is taken"
    assert held[ipv6.rule_name]["protocol"] == "Tcp"
    assert [port_only.priority, ipv6.priority] == [102, 103]
    assert len({port_only.rule_name, outbound.rule_name, ipv6.rule_name}) == 3


async def test_concurrent_blocks_in_one_nsg_take_distinct_priorities(sim, azure):
    team_nsg(sim)
    rules = NetworkRuleActivities(azure)
    addresses = [f"203.0.113.{i}" for i in range(10, 16)]
    blocked = await asyncio.gather(
        *(env().run(rules.block_traffic, block(f"inc-{i}", a)) for i, a in enumerate(addresses))
    )
    priorities = sorted(b.priority for b in blocked)
    assert priorities == list(range(102, 108))
    assert len(rules_of(sim)) == 3 + len(addresses) and team_rules_intact(sim)


async def test_no_free_priority_in_the_range_is_refused_without_a_write(sim, azure):
    team_nsg(sim)
    rules = NetworkRuleActivities(azure)
    seq = last_seq(sim)
    with pytest.raises(ApplicationError) as full:
        await env().run(rules.block_traffic, block(priority_from=100, priority_to=101))
    assert full.value.type == NO_FREE_PRIORITY and full.value.non_retryable
    assert mutations(sim, seq) == []


async def test_a_rule_with_stanchs_name_but_not_its_description_is_never_touched(sim, azure):
    name = block_rule_name("inc-1", "203.0.113.7/32", None, "*", "Inbound")
    imposter = rule(NSG_WEB, name, 150, access="Allow", source="203.0.113.7/32", description="ops")
    team_nsg(sim, extra=[imposter])
    rules = NetworkRuleActivities(azure)
    seq = last_seq(sim)
    with pytest.raises(ApplicationError) as refused:
        await env().run(rules.block_traffic, block())
    assert refused.value.type == NOT_STANCH_RULE and refused.value.non_retryable
    record = BlockedRule(
        incident_id="inc-1", nsg_id=NSG_WEB, rule_name=name, priority=150, direction="Inbound"
    )
    with pytest.raises(ApplicationError) as kept:
        await env().run(rules.unblock_traffic, record)
    assert kept.value.type == NOT_STANCH_RULE
    assert mutations(sim, seq) == []
    assert rules_of(sim)[name]["access"] == "Allow" and rules_of(sim)[name]["description"] == "ops"


async def test_a_rule_with_stanchs_description_but_not_its_name_is_never_removed(sim, azure):
    description = block_description("inc-1", "203.0.113.7/32", None, "*", "Inbound")
    team_nsg(sim, extra=[rule(NSG_WEB, "allow-admin", 150, description=description)])
    rules = NetworkRuleActivities(azure)
    seq = last_seq(sim)
    for forged in ("allow-admin", "allow-https"):
        record = BlockedRule(
            incident_id="inc-1", nsg_id=NSG_WEB, rule_name=forged, priority=150, direction="Inbound"
        )
        with pytest.raises(ApplicationError) as refused:
            await env().run(rules.unblock_traffic, record)
        assert refused.value.type == NOT_STANCH_RULE and refused.value.non_retryable
    # Another incident's rule is not this incident's to remove either.
    mine = await env().run(rules.block_traffic, block("inc-2"))
    with pytest.raises(ApplicationError):
        await env().run(rules.unblock_traffic, mine.model_copy(update={"incident_id": "inc-1"}))
    assert [m[0] for m in mutations(sim, seq)] == ["PUT"]
    assert {"allow-admin", "allow-https", mine.rule_name} <= set(rules_of(sim))


@pytest.mark.parametrize(
    ("address", "port", "why"),
    [
        ("not-an-ip", None, "not an IP address or CIDR"),
        ("203.0.113.7; rm -rf /", None, "not an IP address or CIDR"),
        ("10.0.0.5/24", None, "not an IP address or CIDR"),  # host bits set
        ("0.0.0.0/0", None, "whole internet"),
        ("::/0", None, "whole internet"),
        ("*", None, "whole internet"),
        ("Internet", None, "whole internet"),
        ("16.0.0.0/4", None, "wider than /8"),
        ("168.63.129.16", None, "Azure's platform address"),
        ("168.63.0.0/16", None, "Azure's platform address"),
        ("169.254.169.254", None, "metadata"),
        ("127.0.0.1", None, "loopback"),
        ("203.0.113.7", 0, "port: 0 is out of range"),
        ("203.0.113.7", 70000, "port: 70000 is out of range"),
        (None, None, "give an address to block, a port, or both"),
    ],
)
async def test_bad_blocks_are_refused_before_any_azure_call(sim, azure, address, port, why):
    team_nsg(sim)
    seq = last_seq(sim)
    with pytest.raises(ApplicationError) as refused:
        await env().run(
            NetworkRuleActivities(azure).block_traffic, block(address=address, port=port)
        )
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert why in str(refused.value)
    assert sim.journal.calls(seq) == [], "refused before Azure was called"


async def test_the_nsg_of_a_vm_is_its_nics_else_its_subnets(sim, azure):
    rules = NetworkRuleActivities(azure)
    attach_to_nic(sim, NIC2, team_nsg(sim))
    on_nic = await env().run(rules.find_rule_targets, RuleTargetRequest(resource_id=VM2))
    assert on_nic.nsg_ids == [NSG_WEB]

    subnet_nsg = team_nsg(sim, nsg_id=NSG_WEB.replace("nsg-web", "nsg-subnet"))
    attach_to_subnet(sim, NIC1, subnet_nsg)
    on_subnet = await env().run(rules.find_rule_targets, RuleTargetRequest(resource_id=VM1))
    assert on_subnet.nsg_ids == [subnet_nsg]
    direct = await env().run(rules.find_rule_targets, RuleTargetRequest(resource_id=NSG_WEB))
    assert direct.nsg_ids == [NSG_WEB]
    assert [c for c in sim.journal.calls() if c["mutation"]] == [], "finding is read-only"


async def test_no_nsg_to_add_a_rule_to_is_refused(sim, azure):
    rules = NetworkRuleActivities(azure)
    with pytest.raises(ApplicationError) as bare:
        await env().run(rules.find_rule_targets, RuleTargetRequest(resource_id=VM2))
    assert bare.value.type == NO_NETWORK_SECURITY_GROUP and bare.value.non_retryable
    with pytest.raises(ApplicationError) as workspace:
        await env().run(rules.find_rule_targets, RuleTargetRequest(resource_id=WORKSPACE_ID))
    assert workspace.value.type == INVALID_REQUEST and "params.nsg_id" in str(workspace.value)


# ---- Temporal's own retries, with faults injected into azuresim ---------------------


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


@pytest.mark.parametrize(
    "fault",
    [
        # Azure applied the PUT, the answer was lost (twice: aiohttp re-sends an
        # idempotent PUT once on a dropped connection).
        Fault(path="securityRules/stanch-block-", method="PUT", drop_after=True, times=2),
        Fault(path="securityRules/stanch-block-", method="PUT", status=500, times=1),
        Fault(path="securityRules/stanch-block-", method="PUT", status=429, retry_after=0),
        Fault(path="networkSecurityGroups/nsg-web$", method="GET", status=503, times=2),
    ],
    ids=["answer-lost", "500", "429", "read-503"],
)
async def test_retried_block_and_unblock_leave_exactly_one_rule_then_none(
    dev_env, sim, azure, fault
):
    team_nsg(sim)
    sim.faults.add(fault)
    request = block(f"inc-{uuid.uuid4().hex[:6]}")
    outcome = await probe(dev_env, azure, "block_traffic", request.model_dump())
    assert outcome.ok, outcome
    assert fault.id in {c["fault"] for c in sim.journal.calls()}, "the fault fired"
    ours = [n for n in rules_of(sim) if n.startswith("stanch-block-")]
    assert ours == [request.checked().rule_name], "exactly one rule"
    assert team_rules_intact(sim)
    applied = [c for c in sim.journal.calls() if c["mutation"] and c["applied"]]
    assert len({(c["method"], c["path"]) for c in applied}) == 1

    sim.faults.add(Fault(path="securityRules/stanch-block-", method="DELETE", drop_after=True))
    assert outcome.result is not None
    undone = await probe(dev_env, azure, "unblock_traffic", outcome.result)
    assert undone.ok, undone
    assert not [n for n in rules_of(sim) if n.startswith("stanch-block-")]
    assert team_rules_intact(sim) and len(rules_of(sim)) == 3
