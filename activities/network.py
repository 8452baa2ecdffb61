"""Network quarantine, through `azure-mgmt-network`.

A quarantined NIC is attached to its own NSG, `stanch-quarantine-<incident>`,
whose rules deny all traffic both ways at the highest priority. Swapping the
NIC's NSG, rather than adding deny rules to the one it has, matters twice: an
NSG is often shared by many NICs (a deny rule there would cut off healthy
machines too), and a shared NSG may already hold rules at priority 100 that a
deny rule could never outrank. The NIC's original NSG id is written on the
quarantine NSG as a tag *before* the swap, so a retry after a crash, or a human
in the portal, can always tell what to put back.
"""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.network.models import (
    NetworkInterface,
    NetworkSecurityGroup,
    NetworkSecurityGroupPropertiesFormat,
    SecurityRule,
    SecurityRulePropertiesFormat,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import INVALID_REQUEST, azure_call, keep_request_id
from stanch.activities.heartbeats import polled
from stanch.models.azure import (
    IsolatedNic,
    IsolationCheck,
    QuarantineRecord,
    QuarantineRequest,
    Removal,
    ResourceId,
)

ORIGINAL_NSG_TAG = "stanch.original-nsg"
QUARANTINE_TAG = "stanch.quarantine"
NO_NSG = "none"


def quarantine_nsg_name(incident_id: str) -> str:
    return f"stanch-quarantine-{incident_id}"


def deny_all_rules(incident_id: str) -> list[SecurityRule]:
    return [
        SecurityRule(
            name=f"{quarantine_nsg_name(incident_id)}-{direction.lower()}",
            properties=SecurityRulePropertiesFormat(
                priority=100,
                direction=direction,
                access="Deny",
                protocol="*",
                source_address_prefix="*",
                source_port_range="*",
                destination_address_prefix="*",
                destination_port_range="*",
                description=f"stanch quarantine for incident {incident_id}",
            ),
        )
        for direction in ("Inbound", "Outbound")
    ]


class NetworkActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    async def _nics_of(self, rid: ResourceId) -> list[str]:
        if rid.is_type("Microsoft.Network/networkInterfaces"):
            return [rid.id]
        if rid.is_type("Microsoft.Compute/virtualMachines"):
            async with azure_call(f"read {rid.id}"):
                vm = await self._azure.compute(rid.subscription).virtual_machines.get(
                    rid.resource_group, rid.name
                )
            profile = vm.network_profile
            return [nic.id for nic in (profile.network_interfaces if profile else None) or []]
        raise ApplicationError(
            f"quarantine isolates virtual machines and network interfaces, not {rid.full_type}",
            type=INVALID_REQUEST,
            non_retryable=True,
        )

    @activity.defn
    async def quarantine_network(self, request: QuarantineRequest) -> QuarantineRecord:
        """Idempotent, and each write happens at most once: the NSG and its rules
        are named after the incident, and both the NSG and the NIC are read
        before they are written. A retry (the worker died after Azure applied a
        PUT but before the activity completed) finds the quarantine NSG as it
        wrote it and the NIC already on it, and writes neither again: a second
        PUT of the NSG would be another write in Azure's Activity Log and would
        wipe any rule a responder added for forensic access in between. The
        NIC's original NSG is read back from the quarantine NSG's tag."""
        rid = ResourceId.parse(request.resource_id)
        name = quarantine_nsg_name(request.incident_id)
        request_ids: list[str] = []
        isolated = []
        for nic_id in await self._nics_of(rid):
            activity.heartbeat(nic_id)
            nic_rid = ResourceId.parse(nic_id)
            network = self._azure.network(nic_rid.subscription)
            async with azure_call(f"read {nic_id}"):
                nic = await network.network_interfaces.get(nic_rid.resource_group, nic_rid.name)
            current = nic.network_security_group.id if nic.network_security_group else None
            ours = current is not None and ResourceId.parse(current).name.lower() == name.lower()
            existing = await self._quarantine_nsg(nic_rid, name, required=ours)
            original = _recorded_original(existing) if ours and existing else current
            tags = {QUARANTINE_TAG: request.incident_id, ORIGINAL_NSG_TAG: original or NO_NSG}
            if existing is not None and _holds_quarantine(existing, request.incident_id, tags):
                nsg = existing
            else:
                async with azure_call(f"create quarantine NSG for {nic_id}"):
                    poller = await network.network_security_groups.begin_create_or_update(
                        nic_rid.resource_group,
                        name,
                        NetworkSecurityGroup(
                            location=nic.location,
                            tags=tags,
                            properties=NetworkSecurityGroupPropertiesFormat(
                                security_rules=deny_all_rules(request.incident_id)
                            ),
                        ),
                        polling_interval=self._azure.poll_seconds,
                        cls=keep_request_id(request_ids),
                    )
                    nsg = await polled(poller)
            if not ours:
                await self._put_nic_on(
                    nic, nic_rid, nsg.id, f"attach quarantine NSG to {nic_id}", request_ids
                )
            isolated.append(
                IsolatedNic(nic_id=nic.id, quarantine_nsg_id=nsg.id, original_nsg_id=original)
            )
        return QuarantineRecord(
            resource_id=rid.id,
            incident_id=request.incident_id,
            nics=isolated,
            request_ids=request_ids,
        )

    @activity.defn
    async def verify_quarantine(self, record: QuarantineRecord) -> IsolationCheck:
        """Read-only: each NIC is on its quarantine NSG, and that NSG denies all
        traffic both ways ahead of anything else."""
        problems = []
        for item in record.nics:
            nic_rid = ResourceId.parse(item.nic_id)
            nsg_rid = ResourceId.parse(item.quarantine_nsg_id)
            network = self._azure.network(nic_rid.subscription)
            async with azure_call(f"read {item.nic_id}"):
                nic = await network.network_interfaces.get(nic_rid.resource_group, nic_rid.name)
                nsg = await network.network_security_groups.get(
                    nsg_rid.resource_group, nsg_rid.name
                )
            attached = nic.network_security_group.id if nic.network_security_group else None
            if (attached or "").lower() != item.quarantine_nsg_id.lower():
                problems.append(f"{nic_rid.name} is not on {nsg_rid.name} (on {attached})")
            rules = [r.properties for r in nsg.security_rules or [] if r.properties]
            for direction in ("Inbound", "Outbound"):
                first = min(
                    (r for r in rules if _text(r.direction) == direction),
                    key=lambda r: r.priority,
                    default=None,
                )
                if (
                    first is None
                    or _text(first.access) != "Deny"
                    or first.source_address_prefix != "*"
                ):
                    problems.append(f"{nsg_rid.name} does not deny all {direction.lower()} traffic")
        return IsolationCheck(isolated=not problems, problems=problems)

    async def _put_nic_on(
        self,
        nic: NetworkInterface,
        nic_rid: ResourceId,
        nsg_id: str | None,
        what: str,
        request_ids: list[str],
    ) -> None:
        """Moves the NIC onto `nsg_id` (None: no NSG), the one write that
        isolates or releases it."""
        nic.network_security_group = NetworkSecurityGroup(id=nsg_id) if nsg_id else None
        async with azure_call(what):
            poller = await self._azure.network(
                nic_rid.subscription
            ).network_interfaces.begin_create_or_update(
                nic_rid.resource_group,
                nic_rid.name,
                nic,
                polling_interval=self._azure.poll_seconds,
                cls=keep_request_id(request_ids),
            )
            await polled(poller)

    async def _quarantine_nsg(
        self, nic: ResourceId, nsg_name: str, required: bool
    ) -> NetworkSecurityGroup | None:
        """The quarantine NSG as Azure has it; None if it does not exist yet,
        unless the NIC is already on it (`required`): then its absence is a 404."""
        async with azure_call(f"read quarantine NSG {nsg_name}"):
            try:
                nsg: NetworkSecurityGroup = await self._azure.network(
                    nic.subscription
                ).network_security_groups.get(nic.resource_group, nsg_name)
            except ResourceNotFoundError:
                if required:
                    raise
                return None
        return nsg

    @activity.defn
    async def release_quarantine(self, record: QuarantineRecord) -> Removal:
        """The undo of quarantine_network, from its record. Idempotent: a NIC no
        longer on the quarantine NSG is left alone (a human may have moved it),
        and an NSG already deleted counts as released."""
        changed = False
        request_ids: list[str] = []
        for item in record.nics:
            activity.heartbeat(item.nic_id)
            nic_rid = ResourceId.parse(item.nic_id)
            nsg_rid = ResourceId.parse(item.quarantine_nsg_id)
            network = self._azure.network(nic_rid.subscription)
            async with azure_call(f"read {item.nic_id}"):
                nic = await network.network_interfaces.get(nic_rid.resource_group, nic_rid.name)
            current = nic.network_security_group.id if nic.network_security_group else None
            if current is not None and current.lower() == item.quarantine_nsg_id.lower():
                await self._put_nic_on(
                    nic,
                    nic_rid,
                    item.original_nsg_id,
                    f"restore the NSG of {item.nic_id}",
                    request_ids,
                )
                changed = True
            async with azure_call(f"delete {item.quarantine_nsg_id}"):
                try:
                    await network.network_security_groups.get(nsg_rid.resource_group, nsg_rid.name)
                except ResourceNotFoundError:
                    continue
                poller = await network.network_security_groups.begin_delete(
                    nsg_rid.resource_group,
                    nsg_rid.name,
                    polling_interval=self._azure.poll_seconds,
                    cls=keep_request_id(request_ids),
                )
                await polled(poller)
                changed = True
        return Removal(removed=changed, request_id=request_ids[0] if request_ids else None)


def _recorded_original(nsg: NetworkSecurityGroup) -> str | None:
    original = (nsg.tags or {}).get(ORIGINAL_NSG_TAG, NO_NSG)
    return None if original == NO_NSG else original


def _holds_quarantine(nsg: NetworkSecurityGroup, incident_id: str, tags: dict[str, str]) -> bool:
    """The NSG is the one an earlier attempt wrote: provisioned, tagged as we
    tag it, with both deny-all rules as we write them (extra rules a responder
    added are theirs to keep)."""
    state = _text(nsg.provisioning_state) if nsg.provisioning_state else "Succeeded"
    if state != "Succeeded" or not tags.items() <= (nsg.tags or {}).items():
        return False
    rules = {r.name: r.properties for r in nsg.security_rules or []}
    for wanted in deny_all_rules(incident_id):
        have, want = rules.get(wanted.name), wanted.properties
        if have is None or want is None or _rule_shape(have) != _rule_shape(want):
            return False
    return True


def _rule_shape(rule: SecurityRulePropertiesFormat) -> tuple[object, ...]:
    return (
        rule.priority,
        _text(rule.direction),
        _text(rule.access),
        _text(rule.protocol),
        rule.source_address_prefix,
        rule.source_port_range,
        rule.destination_address_prefix,
        rule.destination_port_range,
    )


def _text(value: object) -> str:
    """SDK enums or plain strings, as ARM sent them."""
    return str(getattr(value, "value", value))
