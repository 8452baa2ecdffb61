"""Several hosts on one machine: a network namespace per host, each joined by a
veth pair to one bridge in the machine's own namespace (where the test runs,
as the operator's laptop and Azure Monitor would), addresses in 10.213.0.0/24.

Cutting a link can leak: with a host's link down, traffic for its address
would follow a default route out of the machine, and something outside may
answer. So a blackhole route for the whole test range goes in first, on the
machine and in every namespace, before anything else: the connected /24 wins
while a link is up, and a cut link then fails here instead of leaking. No
namespace has a default route, so nothing in one can reach past the bridge.

Every name made here starts with `stf-`: whatever has that prefix when a run
starts is a leftover of a crashed run (a lock file makes concurrent runs on
one machine take turns) and is removed first; `destroy` is idempotent and
also kills anything still running inside a namespace. Needs root (`ip`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PREFIX = "stf-"
BRIDGE = "stf-br"
TEST_RANGE = "10.213.0.0/16"
SUBNET = "10.213.0.{}/24"
MACHINE = "10.213.0.1"  # the machine's own address on the bridge
_LOCK = Path(tempfile.gettempdir()) / "stanch-fleet-network.lock"


class NetworkError(RuntimeError):
    """An `ip` command failed; the message holds the command and its stderr."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def can_make_namespaces() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class Host:
    """One host: its namespace, its link on the bridge, its address."""

    name: str  # core, worker-1, ...
    number: int  # the last byte of its address

    @property
    def namespace(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def link(self) -> str:
        """The machine's end of its veth pair (a switch port): down is a cut cable."""
        return f"{PREFIX}{self.name}"[:15]

    @property
    def address(self) -> str:
        return SUBNET.format(self.number).split("/")[0]

    def run_here(self, argv: list[str]) -> list[str]:
        """`argv` run on this host: `ip netns exec` execs it, so it keeps its pid."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class Network:
    """The hosts, made by `create` and removed by `destroy` (both idempotent)."""

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = {host.name: host for host in hosts}
        self._lock: IO[str] | None = None

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> None:
        self._take_lock()
        remove_leftovers()
        # First, before any link exists: a cut never leaks out of the range.
        ip("route", "replace", "blackhole", TEST_RANGE)
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("address", "add", SUBNET.format(1), "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            ns = host.namespace
            ip("netns", "add", ns)
            ip("-n", ns, "route", "add", "blackhole", TEST_RANGE)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", host.link, "master", BRIDGE, "up")
            ip("-n", ns, "address", "add", SUBNET.format(host.number), "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def destroy(self) -> None:
        try:
            remove_leftovers()
        finally:
            if self._lock is not None:
                self._lock.close()  # releases the lock
                self._lock = None

    def cut(self, host: Host) -> None:
        """The host's cable pulled at the switch: its packets go nowhere."""
        ip("link", "set", host.link, "down")

    def restore(self, host: Host) -> None:
        ip("link", "set", host.link, "up")

    def _take_lock(self) -> None:
        self._lock = _LOCK.open("a")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # another run's network: wait for its end


def remove_leftovers() -> None:
    """Everything named `stf-` (processes inside its namespaces first), and the
    blackhole route once nothing is left that could need it."""
    for ns in namespaces():
        for pid in ip("netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "delete", ns, check=False)  # takes its end of each veth pair along
    for link in ip("-o", "link", "show").stdout.splitlines():
        name = link.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            ip("link", "delete", name, check=False)
    ip("route", "delete", "blackhole", TEST_RANGE, check=False)


def namespaces() -> list[str]:
    listed = ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listed if line.startswith(PREFIX)]


@contextlib.contextmanager
def network(hosts: list[Host]) -> Iterator[Network]:
    net = Network(hosts)
    try:
        net.create()
        yield net
    finally:
        net.destroy()


def tcp_open(address: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connect from the machine succeeds (there is no ping here)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
