"""The fleet's network itself (tests/support/netns.py): a crashed run's
leftovers are removed first, the blackhole route is in place on the machine
and in every namespace, hosts reach each other over the bridge, and a cut
link leaks nothing out of the test range; nothing is left behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.netns import (
    BRIDGE,
    TEST_RANGE,
    Host,
    can_make_namespaces,
    ip,
    namespaces,
    network,
    remove_leftovers,
    tcp_open,
)

pytestmark = pytest.mark.skipif(
    not can_make_namespaces(),
    reason="network namespaces need root (CI runs these tests as root: .ci/run)",
)

A, B = Host("probe-a", 91), Host("probe-b", 92)
PORT = 8000
LISTEN = (
    "import socket, sys\n"
    "s = socket.create_server((sys.argv[1], int(sys.argv[2])))\n"
    "print('listening', flush=True)\n"
    "while True: s.accept()[0].close()\n"
)


def route(*args: str, namespace: str | None = None) -> str:
    where = ["-n", namespace] if namespace else []
    return (
        ip(*where, "route", *args, check=False).stdout
        + ip(*where, "route", *args, check=False).stderr
    )


def blackholed(namespace: str | None = None) -> bool:
    return TEST_RANGE in route("show", "type", "blackhole", namespace=namespace)


def reaches(source: Host, target: Host) -> bool:
    probe = f"import socket; socket.create_connection(('{target.address}', {PORT}), timeout=1)"
    argv = source.run_here([sys.executable, "-c", probe])
    return subprocess.run(argv, stderr=subprocess.DEVNULL, timeout=30).returncode == 0


def leftover_of_a_crashed_run() -> subprocess.Popen[bytes]:
    """A namespace with a process still in it, a stale link, the route."""
    ip("netns", "add", "stf-leftover")
    ip("link", "add", "stf-stale", "type", "bridge")
    ip("route", "replace", "blackhole", TEST_RANGE)
    return subprocess.Popen(Host("leftover", 99).run_here(["sleep", "600"]))


def test_leftovers_go_first_and_a_cut_link_leaks_nothing():
    try:
        stale = leftover_of_a_crashed_run()
    except BaseException:
        remove_leftovers()
        raise
    try:
        with network([A, B]) as net:
            assert stale.wait(timeout=10) != 0, "the leftover's process was killed"
            assert namespaces() == [A.namespace, B.namespace]
            assert "stf-stale" not in ip("-o", "link", "show").stdout
            assert blackholed() and blackholed(A.namespace) and blackholed(B.namespace)

            server = subprocess.Popen(
                A.run_here([sys.executable, "-c", LISTEN, A.address, str(PORT)]),
                stdout=subprocess.PIPE,
            )
            try:
                assert server.stdout is not None and server.stdout.readline() == b"listening\n"
                assert tcp_open(A.address, PORT), "the machine reaches a host"
                assert reaches(B, A), "a host reaches another over the bridge"

                net.cut(A)
                assert not tcp_open(A.address, PORT) and not reaches(B, A)
                # Cut, its address still routes to the bridge, never out of the
                # machine; from inside, only the test's own /24 has a route.
                assert f"dev {BRIDGE}" in route("get", A.address)
                assert "unreachable" in route("get", "192.0.2.1", namespace=A.namespace)
                # The rest of the range is blackholed (the kernel refuses to route it).
                assert "Invalid argument" in route("get", "10.213.7.7", namespace=A.namespace)
                assert "Invalid argument" in route("get", "10.213.7.7")

                net.restore(A)
                assert tcp_open(A.address, PORT, timeout=5)
            finally:
                server.kill()
                server.wait()
    finally:
        stale.kill()
        stale.wait()
        remove_leftovers()  # whatever this test failed to
    assert namespaces() == []
    assert "stf-" not in ip("-o", "link", "show").stdout
    assert not blackholed()
