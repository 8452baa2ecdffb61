"""The worker's Azure clients keep their connections to an endpoint with a CA
of our own (azuresim) open and reuse them. Given the CA as azure-core's
`connection_verify`, each request built a TLS context of its own, and aiohttp
(whose pool is keyed by it) opened a new connection, with a full handshake,
for every call."""

from __future__ import annotations

from pathlib import Path

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.testing.estate import SUB

CALLS = 12


async def test_calls_to_azuresim_reuse_one_connection(azure: AzureClients, sim: AzureSim):
    compute = azure.compute(SUB)
    for _ in range(CALLS):
        assert (await compute.virtual_machines.get("rg-web", "vm-web-2")).name == "vm-web-2"

    opened = connections_to(sim_port(sim))
    assert opened == 1, f"{opened} connections open to azuresim after {CALLS} calls"


def sim_port(sim: AzureSim) -> int:
    return int(sim.url.rsplit(":", 1)[1].split("/", 1)[0])


def connections_to(port: int) -> int:
    """Established TCP connections to `port` on this machine (/proc/net/tcp)."""
    established = "01"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == established:
                count += 1
    return count
