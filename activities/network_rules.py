"""Blocking an address or a port with an NSG security rule, and taking it back.

Which NSG: the one named directly, or, for a VM or a NIC, the NSG on each NIC
(else the NSG on the NIC's subnet): traffic must pass both, so a deny in the
NIC's own NSG is enough, and it touches nothing else on the subnet. A NIC with
neither is refused: creating and attaching an NSG is quarantine's job, a much
bigger change than one rule.

Each rule is named after the incident and the traffic it denies
(models/network_rules.py), so a retried block finds its own rule and writes
nothing, and a retried unblock of a rule already gone succeeds. A rule whose
name or description is not stanch's for this incident is never overwritten
and never deleted, whatever the request says.
"""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError
from azure.mgmt.network.models import (
    NetworkSecurityGroup,
    SecurityRule,
    SecurityRulePropertiesFormat,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import (
    CONFLICT,
    INVALID_REQUEST,
    RESOURCE_NOT_FOUND,
    azure_call,
    keep_request_id,
)
from stanch.activities.heartbeats import polled
from stanch.models.azure import Removal, ResourceId
from stanch.models.network_rules import (
    BlockedRule,
    BlockRequest,
    RuleTargetRequest,
    RuleTargets,
    TrafficBlock,
    is_stanch_block,
)

NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
# Types a runbook can branch on.
NOT_STANCH_RULE = "NotStanchRule"
NO_NETWORK_SECURITY_GROUP = "NoNetworkSecurityGroup"
NO_FREE_PRIORITY = "NoFreePriority"
# Another writer took the priority between our read and our write: read again.
PRIORITY_TAKEN = "SecurityRuleConflict"
PRIORITY_ATTEMPTS = 8


class NetworkRuleActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    @activity.defn
    async def find_rule_targets(self, request: RuleTargetRequest) -> RuleTargets:
        """Read-only: the NSGs a block on this resource goes into."""
        rid = _parse(request.resource_id, "resource_id")
        if rid.is_type(NSG_TYPE):
            return RuleTargets(resource_id=rid.id, nsg_ids=[rid.id])
        if rid.is_type("Microsoft.Network/networkInterfaces"):
            nic_ids = [rid.id]
        elif rid.is_type("Microsoft.Compute/virtualMachines"):
            async with azure_call(f"read {rid.id}"):
                vm = await self._azure.compute(rid.subscription).virtual_machines.get(
                    rid.resource_group, rid.name
                )
            profile = vm.network_profile
            nic_ids = [n.id for n in (profile.network_interfaces if profile else None) or []]
        else:
            raise _invalid(
                f"resource_id: traffic is blocked in a network security group, or in the NSG "
                f"of a VM or NIC, not on {rid.full_type} (name the NSG in params.nsg_id)"
            )
        found: dict[str, str] = {}
        for nic_id in nic_ids:
            activity.heartbeat(nic_id)
            nsg_id = await self._nsg_of_nic(nic_id)
            if nsg_id is None:
                raise ApplicationError(
                    f"{nic_id} has no network security group, on the NIC or its subnet: "
                    "nothing to add a rule to (name one in params.nsg_id)",
                    type=NO_NETWORK_SECURITY_GROUP,
                    non_retryable=True,
                )
            found.setdefault(nsg_id.lower(), nsg_id)
        return RuleTargets(resource_id=rid.id, nsg_ids=list(found.values()))

    async def _nsg_of_nic(self, nic_id: str) -> str | None:
        nic_rid = ResourceId.parse(nic_id)
        network = self._azure.network(nic_rid.subscription)
        async with azure_call(f"read {nic_id}"):
            nic = await network.network_interfaces.get(nic_rid.resource_group, nic_rid.name)
        if nic.network_security_group and nic.network_security_group.id:
            return str(nic.network_security_group.id)
        for config in nic.ip_configurations or []:
            subnet_id = config.subnet.id if config.subnet else None
            if not subnet_id:
                continue
            # The subnet is read through its virtual network: one GET, every subnet.
            vnet = ResourceId.parse(subnet_id.split("/subnets/", 1)[0])
            async with azure_call(f"read {vnet.id}"):
                network_of = await self._azure.network(vnet.subscription).virtual_networks.get(
                    vnet.resource_group, vnet.name
                )
            for subnet in network_of.subnets or []:
                if (subnet.id or "").lower() == subnet_id.lower() and subnet.network_security_group:
                    return str(subnet.network_security_group.id)
        return None

    @activity.defn
    async def block_traffic(self, request: BlockRequest) -> BlockedRule:
        """Idempotent: reads the NSG first; its own rule already there (a retry
        after Azure applied the PUT but the answer was lost) is returned
        without a second write. The priority is the lowest one in the
        request's range that no rule of the same direction holds."""
        block = _checked(request)
        nsg_rid = _parse(request.nsg_id, "nsg_id")
        if not nsg_rid.is_type(NSG_TYPE):
            raise _invalid(f"nsg_id: {nsg_rid.id} is not a network security group")
        for _ in range(PRIORITY_ATTEMPTS):
            nsg = await self._read_nsg(nsg_rid)
            existing = _rule_named(nsg, block.rule_name)
            if existing is not None:
                props = existing.properties
                description = props.description if props else None
                if not is_stanch_block(request.incident_id, block.rule_name, description):
                    raise ApplicationError(
                        f"{nsg_rid.name} already has a rule named {block.rule_name} that stanch "
                        "did not write (its description does not name this incident): left "
                        "as it is",
                        type=NOT_STANCH_RULE,
                        non_retryable=True,
                    )
                if props is not None and _denies(props, block):
                    return _record(request, block, int(props.priority or 0), created=False)
            priority = (
                int(existing.properties.priority or 0)
                if existing is not None and existing.properties is not None
                else _free_priority(nsg, request, block)
            )
            request_ids: list[str] = []
            try:
                async with azure_call(f"add {block.rule_name} to {nsg_rid.id}"):
                    try:
                        poller = await self._azure.network(
                            nsg_rid.subscription
                        ).security_rules.begin_create_or_update(
                            nsg_rid.resource_group,
                            nsg_rid.name,
                            block.rule_name,
                            _rule(block, priority),
                            polling_interval=self._azure.poll_seconds,
                            cls=keep_request_id(request_ids),
                        )
                        await polled(poller)
                    except HttpResponseError as e:
                        if _error_code(e) == PRIORITY_TAKEN and existing is None:
                            raise _PriorityTaken from None
                        raise
            except _PriorityTaken:
                activity.logger.info("priority %s was taken meanwhile; reading again", priority)
                continue
            return _record(
                request,
                block,
                priority,
                created=existing is None,
                request_id=request_ids[0] if request_ids else None,
            )
        raise ApplicationError(
            f"{nsg_rid.name}: every free priority was taken by other writers "
            f"{PRIORITY_ATTEMPTS} times in a row",
            type=CONFLICT,
        )

    @activity.defn
    async def unblock_traffic(self, rule: BlockedRule) -> Removal:
        """The undo of block_traffic, from its record. Idempotent: a rule (or an
        NSG) already gone counts as removed. Refuses, without deleting, a rule
        whose name or description is not stanch's for the record's incident."""
        nsg_rid = _parse(rule.nsg_id, "nsg_id")
        if not nsg_rid.is_type(NSG_TYPE):
            raise _invalid(f"nsg_id: {nsg_rid.id} is not a network security group")
        try:
            nsg = await self._read_nsg(nsg_rid)
        except ApplicationError as e:
            if e.type == RESOURCE_NOT_FOUND:
                return Removal(removed=False)
            raise
        existing = _rule_named(nsg, rule.rule_name)
        if existing is None:
            return Removal(removed=False)
        description = existing.properties.description if existing.properties else None
        if not is_stanch_block(rule.incident_id, rule.rule_name, description):
            raise ApplicationError(
                f"{rule.rule_name} in {nsg_rid.name} is not a rule stanch wrote for incident "
                f"{rule.incident_id} (name or description differ): not removed",
                type=NOT_STANCH_RULE,
                non_retryable=True,
            )
        request_ids: list[str] = []
        async with azure_call(f"remove {rule.rule_name} from {nsg_rid.id}"):
            poller = await self._azure.network(nsg_rid.subscription).security_rules.begin_delete(
                nsg_rid.resource_group,
                nsg_rid.name,
                rule.rule_name,
                polling_interval=self._azure.poll_seconds,
                cls=keep_request_id(request_ids),
            )
            await polled(poller)
        return Removal(removed=True, request_id=request_ids[0] if request_ids else None)

    async def _read_nsg(self, nsg: ResourceId) -> NetworkSecurityGroup:
        async with azure_call(f"read {nsg.id}"):
            found: NetworkSecurityGroup = await self._azure.network(
                nsg.subscription
            ).network_security_groups.get(nsg.resource_group, nsg.name)
        return found


class _PriorityTaken(Exception):
    pass


def _checked(request: BlockRequest) -> TrafficBlock:
    try:
        return request.checked()
    except ValueError as e:
        raise _invalid(str(e)) from None


def _parse(resource_id: str, field: str) -> ResourceId:
    try:
        return ResourceId.parse(resource_id)
    except ValueError as e:
        raise _invalid(f"{field}: {e}") from None


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=INVALID_REQUEST, non_retryable=True)


def _rule_named(nsg: NetworkSecurityGroup, name: str) -> SecurityRule | None:
    return next(
        (r for r in nsg.security_rules or [] if (r.name or "").lower() == name.lower()), None
    )


def _free_priority(nsg: NetworkSecurityGroup, request: BlockRequest, block: TrafficBlock) -> int:
    taken = {
        int(r.properties.priority)
        for r in nsg.security_rules or []
        if r.properties is not None
        and r.properties.priority is not None
        and _text(r.properties.direction) == block.direction
    }
    for priority in range(request.priority_from, request.priority_to + 1):
        if priority not in taken:
            return priority
    raise ApplicationError(
        f"{nsg.name}: every {block.direction.lower()} priority from {request.priority_from} "
        f"to {request.priority_to} is in use; free one or widen the range",
        type=NO_FREE_PRIORITY,
        non_retryable=True,
    )


def _rule(block: TrafficBlock, priority: int) -> SecurityRule:
    return SecurityRule(
        properties=SecurityRulePropertiesFormat(
            priority=priority,
            direction=block.direction,
            access="Deny",
            protocol=block.protocol,
            source_address_prefix=block.source,
            source_port_range="*",
            destination_address_prefix=block.destination,
            destination_port_range=block.port_range,
            description=block.description,
        ),
    )


def _denies(props: SecurityRulePropertiesFormat, block: TrafficBlock) -> bool:
    """The rule in Azure denies exactly what `block` asks (its priority may
    have been moved by a human: that is theirs to decide)."""
    return (
        _text(props.access) == "Deny"
        and _text(props.direction) == block.direction
        and _text(props.protocol) == block.protocol
        and props.source_address_prefix == block.source
        and props.destination_address_prefix == block.destination
        and props.destination_port_range == block.port_range
        and (props.provisioning_state is None or _text(props.provisioning_state) == "Succeeded")
    )


def _record(
    request: BlockRequest,
    block: TrafficBlock,
    priority: int,
    *,
    created: bool,
    request_id: str | None = None,
) -> BlockedRule:
    return BlockedRule(
        incident_id=request.incident_id,
        nsg_id=ResourceId.parse(request.nsg_id).id,
        rule_name=block.rule_name,
        priority=priority,
        direction=block.direction,
        address=block.address,
        port=block.port,
        protocol=block.protocol,
        created=created,
        request_id=request_id,
    )


def _error_code(error: HttpResponseError) -> str | None:
    return getattr(getattr(error, "error", None), "code", None)


def _text(value: object) -> str:
    """SDK enums or plain strings, as ARM sent them."""
    return str(getattr(value, "value", value))
