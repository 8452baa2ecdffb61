"""Network security groups in azuresim's estate for the block_traffic tests: an
NSG with the rules a team already has, on a NIC or on a subnet, and reading
back what Azure holds."""

from __future__ import annotations

from typing import Any

from stanch.azuresim import AzureSim
from stanch.testing.estate import RG

NSG_WEB = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-web"
VNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet-web"
SUBNET = f"{VNET}/subnets/snet-app"

# What a team's NSG already holds: stanch must work around these, never touch them.
TEAM_RULES = [
    ("allow-https", 100, "Inbound", "Allow", "*", "443", "web traffic"),
    ("allow-ssh-from-bastion", 101, "Inbound", "Allow", "10.0.9.0/24", "22", "bastion"),
    ("deny-smtp-out", 100, "Outbound", "Deny", "*", "25", "no mail"),
]


def rule(
    nsg_id: str,
    name: str,
    priority: int,
    direction: str = "Inbound",
    access: str = "Allow",
    source: str = "*",
    port: str = "*",
    description: str = "",
) -> dict[str, Any]:
    return {
        "name": name,
        "id": f"{nsg_id}/securityRules/{name}",
        "properties": {
            "priority": priority,
            "direction": direction,
            "access": access,
            "protocol": "*",
            "sourceAddressPrefix": source,
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": port,
            "description": description,
        },
    }


def team_nsg(
    sim: AzureSim, nsg_id: str = NSG_WEB, extra: list[dict[str, Any]] | None = None
) -> str:
    """An NSG holding TEAM_RULES (and `extra`), attached to nothing yet."""
    rules = [
        rule(nsg_id, n, p, d, a, s, port, desc) for n, p, d, a, s, port, desc in TEAM_RULES
    ] + list(extra or [])
    with sim.state.lock:
        sim.state.put(nsg_id, "westeurope", {"owner": "web-team"}, {"securityRules": rules})
    return nsg_id


def attach_to_nic(sim: AzureSim, nic_id: str, nsg_id: str) -> None:
    with sim.state.lock:
        sim.state.get(nic_id).properties["networkSecurityGroup"] = {"id": nsg_id}


def attach_to_subnet(sim: AzureSim, nic_id: str, nsg_id: str) -> None:
    """A virtual network whose subnet carries the NSG, and the NIC in that subnet."""
    with sim.state.lock:
        sim.state.put(
            VNET,
            "westeurope",
            {},
            {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [
                    {
                        "name": "snet-app",
                        "id": SUBNET,
                        "properties": {
                            "addressPrefix": "10.0.1.0/24",
                            "networkSecurityGroup": {"id": nsg_id},
                        },
                    }
                ],
            },
        )
        nic = sim.state.get(nic_id)
        for config in nic.properties.get("ipConfigurations") or []:
            config.setdefault("properties", {})["subnet"] = {"id": SUBNET}


def rules_of(sim: AzureSim, nsg_id: str = NSG_WEB) -> dict[str, dict[str, Any]]:
    """The NSG's rules as azuresim holds them, by name."""
    with sim.state.lock:
        held = sim.state.get(nsg_id).properties.get("securityRules") or []
        return {r["name"]: dict(r["properties"]) for r in held}


def team_rules_intact(sim: AzureSim, nsg_id: str = NSG_WEB) -> bool:
    held = rules_of(sim, nsg_id)
    return all(
        name in held and held[name]["priority"] == priority and held[name]["access"] == access
        for name, priority, _, access, _, _, _ in TEAM_RULES
    )
