"""Block the address a log alert names: a deny rule in the target's NSG, approved first.

A log search alert split by a column (`ClientIP`, `IPAddress`, ...) carries the
address in its dimensions; the incident hands them to the runbook. The address
is checked before anyone is asked (not an IP or CIDR, the whole internet, an
address Azure itself needs: refused, handed to humans). The rule goes into the
NSG of each NIC of the alert's VM (else the NIC's subnet's), or into the NSG
named in `params.nsg_id` (a log alert's target is often its workspace); the
evidence (each NSG as it was, and any diagnostic script's output) is kept
before the gate. Release removes exactly the rules it added, and only if they
are still stanch's.

Bind it with a match of your own (see stanch.yaml): its declared match only
answers log alerts whose rule name says block-ip.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.evidence import EvidenceActivities
    from stanch.activities.network_rules import NetworkRuleActivities
    from stanch.activities.run_command import RunCommandActivities
    from stanch.models.azure import ResourceId
    from stanch.models.config import AlertMatch
    from stanch.models.evidence import EvidenceRequest
    from stanch.models.network_rules import (
        BLOCK_PRIORITY_FROM,
        BLOCK_PRIORITY_TO,
        BlockRequest,
        Direction,
        Protocol,
        RuleTargetRequest,
    )
    from stanch.models.risk import Risk
    from stanch.models.run_command import DIAGNOSTIC_SCRIPTS, DiagnosticRequest
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import Runbook

ADDRESS_DIMENSIONS = ["ClientIP", "IPAddress", "SourceIP", "CallerIpAddress"]


class BlockIpParams(BaseModel):
    # Dimension names that may hold the address, tried in order (case-insensitive).
    # Empty: no address, block `port` for every sender.
    address_dimensions: list[str] = Field(default_factory=lambda: list(ADDRESS_DIMENSIONS))
    port: int | None = Field(default=None, ge=1, le=65535)  # None: every port
    protocol: Protocol = "*"
    direction: Direction = "Inbound"
    nsg_id: str | None = None  # the NSG to add the rule to; default: the alert's VM's
    priority_from: int = Field(default=BLOCK_PRIORITY_FROM, ge=100, le=4096)
    priority_to: int = Field(default=BLOCK_PRIORITY_TO, ge=100, le=4096)
    # Diagnostic scripts (models/run_command.py) run on the alert's VM as evidence.
    diagnostics: list[str] = Field(default_factory=list)

    @field_validator("nsg_id")
    @classmethod
    def _nsg(cls, value: str | None) -> str | None:
        if value is None:
            return None
        rid = ResourceId.parse(value)
        if not rid.is_type("Microsoft.Network/networkSecurityGroups"):
            raise ValueError(f"{value!r} is not a network security group")
        return rid.id

    @field_validator("diagnostics")
    @classmethod
    def _known_scripts(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in DIAGNOSTIC_SCRIPTS]
        if unknown:
            raise ValueError(
                f"unknown diagnostic script(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(DIAGNOSTIC_SCRIPTS))})"
            )
        return value


@workflow.defn(name="block_ip")
class BlockIp(Runbook):
    spec = RunbookSpec(
        name="block_ip",
        description="Deny traffic from the address a log alert names (its dimensions), in "
        "the NSG of the alert's VM or a named NSG, once approved. Release removes the rule.",
        risk=Risk.MEDIUM,
        author="stanch",
        matches=AlertMatch(monitoring_services=["Log Alerts V2"], rules=["*block-ip*"]),
        approvals={"block": Risk.MEDIUM},
        outcome=RunbookOutcome.CONTAINED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        self._dimensions = inp.dimensions
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        params = self.parameters(BlockIpParams)
        # What to block, checked before anyone is paged: an address no one may
        # block is not a question for an approver. (The NSG is filled in below.)
        block = BlockRequest(
            incident_id=self.incident_id,
            nsg_id=params.nsg_id or self.resource_id,
            address=self._address(params),
            port=params.port,
            protocol=params.protocol,
            direction=params.direction,
            priority_from=params.priority_from,
            priority_to=params.priority_to,
        )
        try:
            what = block.checked()
        except ValueError as e:
            raise ApplicationError(str(e), type="InvalidRequest", non_retryable=True) from None

        targets = await self.step(
            "find network security groups",
            NetworkRuleActivities.find_rule_targets,
            RuleTargetRequest(resource_id=params.nsg_id or self.resource_id),
        )
        for nsg_id in targets.nsg_ids:
            await self.step(
                f"capture evidence ({nsg_id.rsplit('/', 1)[-1]})",
                EvidenceActivities.capture_evidence,
                EvidenceRequest(incident_id=self.incident_id, resource_id=nsg_id),
            )
        for script in params.diagnostics:
            await self.step(
                f"run diagnostic {script}",
                RunCommandActivities.run_diagnostic,
                DiagnosticRequest(
                    incident_id=self.incident_id, resource_id=self.resource_id, script=script
                ),
            )
        await self.approval("block")
        for nsg_id in targets.nsg_ids:
            await self.act(
                f"block {what.address or 'every address'} "
                f"(port {what.port_range}) in {nsg_id.rsplit('/', 1)[-1]}",
                NetworkRuleActivities.block_traffic,
                block.model_copy(update={"nsg_id": nsg_id}),
                undo=lambda rule: (NetworkRuleActivities.unblock_traffic, rule),
            )
        return RunbookOutcome.CONTAINED

    def _address(self, params: BlockIpParams) -> str | None:
        if not params.address_dimensions:
            return None
        held = {name.lower(): value for name, value in self._dimensions.items()}
        for name in params.address_dimensions:
            if (value := held.get(name.lower())) is not None:
                return value
        raise ApplicationError(
            f"the alert carries none of the dimensions {', '.join(params.address_dimensions)} "
            f"(it has: {', '.join(sorted(self._dimensions)) or 'none'}); nothing to block",
            type="NoAddress",
            non_retryable=True,
        )
