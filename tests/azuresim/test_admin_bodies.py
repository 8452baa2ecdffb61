"""A malformed body to azuresim's admin API gets a 400 naming the problem, and
changes nothing (the review's friction: it used to drop the connection)."""

from __future__ import annotations

import socket

import httpx
import pytest

from stanch.azuresim.admin import SimAdmin, trusting
from stanch.testing.estate import VM1

BAD = [
    ("/_admin/faults", b"{not json", "not JSON"),
    ("/_admin/faults", b"\xff\xfe{}", "not JSON"),
    ("/_admin/faults", b"[1, 2]", "must be a JSON object, got a JSON list"),
    ("/_admin/faults", b"", "must be a JSON object, got no body"),
    ("/_admin/faults", b'{"status": 200}', "status: Input should be greater than or equal to 400"),
    (
        "/_admin/faults",
        b'{"path": "x", "explode": true}',
        "explode: Extra inputs are not permitted",
    ),
    ("/_admin/world", b'{"resources": "vm1"}', "resources: Input should be a valid list"),
    ("/_admin/world", b'{"resources": [{"health": "Degraded"}]}', "resources.0.id: Field required"),
    ("/_admin/world", b'{"metrics": {"x": {"CPU": {"values": "high"}}}}', "values"),
    (
        "/_admin/world",
        b'{"resources": [{"id": "' + VM1.encode() + b'", "health": "Degraded"}, {"id": "/nope"}]}',
        "was not found",
    ),
]


@pytest.mark.parametrize(("route", "body", "problem"), BAD)
def test_a_malformed_admin_body_is_a_400_that_changes_nothing(sim, route, body, problem):
    admin = SimAdmin(sim.url, sim.ca_file)
    before = (admin.state(), admin.faults())
    response = httpx.post(
        f"{sim.url}{route}",
        content=body,
        headers={"Content-Type": "application/json"},
        verify=trusting(sim.ca_file),
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert problem in response.json()["error"]["message"]
    after = (admin.state(), admin.faults())
    assert after == before
    assert admin.journal() == [], "admin calls are not Azure calls"
    admin.close()


def test_a_bad_content_length_is_answered_not_dropped(sim):
    context = trusting(sim.ca_file)
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(
                b"POST /_admin/faults HTTP/1.1\r\nHost: localhost\r\nContent-Length: lots\r\n\r\n{}"
            )
            received = b""
            while chunk := tls.recv(4096):  # it answers, then closes: the body's end is unknown
                received += chunk
    answer = received.decode()
    assert answer.startswith("HTTP/1.1 400") and "Content-Length is not a number" in answer
