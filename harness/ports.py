"""A port nobody listens on, for a server started next (tests, drills, benchmarks
run side by side, so nothing binds a fixed port)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
