"""Blocking traffic with an NSG security rule: what to block, the rule stanch
writes for it, and how stanch recognises its own rules.

The address usually comes from an alert (a log alert's dimensions), so it is
checked here, in one pure place the runbook (before anyone is asked to
approve) and the activity (before Azure is called) both use: an address that
is not an IP or CIDR, a port out of range, the whole internet, or an address
Azure itself needs (the platform's 168.63.129.16, the metadata service, ...)
is refused with a message naming the field. A spoofed `ClientIP` in a log line
must never get stanch to cut a VM off from its own platform.

A rule is stanch's only when BOTH its name carries the block prefix and the
incident, and its description names the incident as stanch writes it: a rule a
human wrote (or renamed, or re-described) is never changed or removed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Literal

from pydantic import BaseModel

BLOCK_RULE_PREFIX = "stanch-block-"
# Priorities stanch takes for its block rules unless told otherwise: a deny
# outranks any allow with a higher number, so keep this band free of your own
# rules (stanch never takes a priority that is in use in the same direction).
BLOCK_PRIORITY_FROM = 100
BLOCK_PRIORITY_TO = 199
ADDRESS_LIMIT = 64  # the longest IPv6 CIDR is 43 characters
# The narrowest prefix still called "an address from an alert": anything wider
# is a human's decision, not a runbook's.
MIN_PREFIX = {4: 8, 6: 32}
# Addresses a VM cannot live without, or that are not a sender at all.
PROTECTED_NETWORKS = {
    "168.63.129.16/32": "Azure's platform address (DNS, DHCP, health probes)",
    "169.254.169.254/32": "the instance metadata service",
    "127.0.0.0/8": "loopback",
    "::1/128": "loopback",
    "0.0.0.0/8": "'this network'",
    "169.254.0.0/16": "link-local",
    "fe80::/10": "link-local",
    "224.0.0.0/4": "multicast",
    "ff00::/8": "multicast",
    "255.255.255.255/32": "broadcast",
}
WHOLE_INTERNET = {"*", "any", "internet", "0.0.0.0/0", "::/0", "0.0.0.0", "::"}

Direction = Literal["Inbound", "Outbound"]
Protocol = Literal["*", "Tcp", "Udp", "Icmp"]
_INCIDENT = re.compile(r"[A-Za-z0-9-]{1,40}")


class RuleTargetRequest(BaseModel):
    """Where block rules go: an NSG itself, or a VM or NIC (the NSG of each NIC,
    else of its subnet)."""

    resource_id: str


class RuleTargets(BaseModel):
    resource_id: str
    nsg_ids: list[str]  # each once, in the order of the VM's NICs

    def summary_line(self) -> str:
        return ", ".join(n.rsplit("/", 1)[-1] for n in self.nsg_ids) or "no NSG"


class BlockRequest(BaseModel):
    """Deny traffic from (Inbound) or to (Outbound) an address, on a port or all
    ports, in one NSG. Plain types on purpose: `checked()` says what is wrong
    (a workflow cannot build a model that fails validation without failing its
    task, and an activity must refuse without being retried)."""

    incident_id: str
    nsg_id: str
    address: str | None = None  # an IP or CIDR; None: every address (a port block)
    port: int | None = None  # None: every port
    protocol: Protocol = "*"
    direction: Direction = "Inbound"
    priority_from: int = BLOCK_PRIORITY_FROM
    priority_to: int = BLOCK_PRIORITY_TO

    def checked(self) -> TrafficBlock:
        """The rule this request asks for; ValueError naming the field otherwise."""
        if not _INCIDENT.fullmatch(self.incident_id):
            raise ValueError(
                f"incident_id: {self.incident_id!r} is not an incident id (letters, digits "
                "and dashes, at most 40)"
            )
        network = None if self.address is None else blockable_network(self.address)
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is out of range (1-65535)")
        if network is None and self.port is None:
            raise ValueError(
                "address: give an address to block, a port, or both (blocking every address "
                "on every port is not a block, it is an outage)"
            )
        if not 100 <= self.priority_from <= self.priority_to <= 4096:
            raise ValueError(
                f"priority_from/priority_to: {self.priority_from}-{self.priority_to} is not a "
                "range within 100-4096"
            )
        shown = str(network) if network is not None else None
        return TrafficBlock(
            rule_name=block_rule_name(
                self.incident_id, shown, self.port, self.protocol, self.direction
            ),
            description=block_description(
                self.incident_id, shown, self.port, self.protocol, self.direction
            ),
            address=shown,
            port=self.port,
            protocol=self.protocol,
            direction=self.direction,
        )


class TrafficBlock(BaseModel):
    """A checked block: the rule's name, description and what it denies."""

    rule_name: str
    description: str
    address: str | None
    port: int | None
    protocol: Protocol
    direction: Direction

    @property
    def source(self) -> str:
        return (self.address or "*") if self.direction == "Inbound" else "*"

    @property
    def destination(self) -> str:
        return "*" if self.direction == "Inbound" else (self.address or "*")

    @property
    def port_range(self) -> str:
        return "*" if self.port is None else str(self.port)


class BlockedRule(BaseModel):
    """Exactly the rule block_traffic left in place: the input of its undo."""

    incident_id: str
    nsg_id: str
    rule_name: str
    priority: int
    direction: Direction
    address: str | None = None
    port: int | None = None
    protocol: Protocol = "*"
    created: bool = True  # False: a retry (or a rerun) found it already in place
    request_id: str | None = None

    def summary_line(self) -> str:
        what = self.address or "every address"
        port = f"port {self.port}" if self.port is not None else "every port"
        way = "from" if self.direction == "Inbound" else "to"
        return (
            f"{self.direction.lower()} traffic {way} {what} ({port}) denied by "
            f"{self.rule_name} at priority {self.priority} in {self.nsg_id.rsplit('/', 1)[-1]}"
        )


def blockable_network(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """`address` as a network stanch may block, or ValueError saying why not."""
    text = address.strip()
    if len(text) > ADDRESS_LIMIT:
        raise ValueError(f"address: {text[:ADDRESS_LIMIT]!r}... is not an IP address or CIDR")
    if text.lower() in WHOLE_INTERNET:
        raise ValueError(
            f"address: {text!r} is the whole internet; stanch blocks addresses, never "
            "everything (to block a port for every address, give the port and no address)"
        )
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise ValueError(f"address: {text!r} is not an IP address or CIDR ({e})") from None
    if network.prefixlen == 0:
        raise ValueError(f"address: {text!r} is the whole internet; stanch never blocks it")
    narrowest = MIN_PREFIX[network.version]
    if network.prefixlen < narrowest:
        raise ValueError(
            f"address: {text!r} is wider than /{narrowest}: a block that broad is a human's "
            "change, not a runbook's"
        )
    for protected, why in PROTECTED_NETWORKS.items():
        other = ipaddress.ip_network(protected)
        if other.version == network.version and network.overlaps(other):
            raise ValueError(f"address: {text!r} covers {other} ({why}); stanch never blocks it")
    return network


def block_rule_name(
    incident_id: str, address: str | None, port: int | None, protocol: str, direction: str
) -> str:
    """`stanch-block-<incident>-<digest>`: one rule per incident and traffic, so
    a retry finds its own rule and one incident can block several addresses.
    At most 62 characters (Azure allows 80)."""
    traffic = f"{direction}|{protocol}|{address or '*'}|{port or '*'}".lower()
    digest = hashlib.sha256(traffic.encode()).hexdigest()[:8]
    return f"{BLOCK_RULE_PREFIX}{incident_id}-{digest}"


def block_description(
    incident_id: str, address: str | None, port: int | None, protocol: str, direction: str
) -> str:
    """What stanch writes as the rule's description (Azure allows 140 characters)."""
    return (
        f"{description_marker(incident_id)} {direction} {protocol} "
        f"{address or 'any address'} port {port or 'any'}"
    )


def description_marker(incident_id: str) -> str:
    return f"stanch block for incident {incident_id}:"


def is_stanch_block(incident_id: str, rule_name: str, description: str | None) -> bool:
    """The rule is one stanch wrote for this incident: its name AND description say so."""
    name_ok = rule_name.lower().startswith(f"{BLOCK_RULE_PREFIX}{incident_id}-".lower())
    return name_ok and (description or "").startswith(description_marker(incident_id))
