"""azuresim itself, over raw HTTPS: the protocol details the SDKs rely on, the
admin API, faults, and `stanch sim` as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stanch.azuresim.admin import SimAdmin, trusting
from stanch.harness.ports import free_port
from stanch.harness.waiting import wait_until
from stanch.testing.estate import RG, SUB, VM1, WORLD

AUTH = {"Authorization": "Bearer anything"}


def client(sim) -> httpx.Client:
    return httpx.Client(base_url=sim.url, verify=trusting(sim.ca_file), headers=AUTH, timeout=10)


def test_https_only_with_its_own_ca(sim):
    with pytest.raises(httpx.HTTPError):
        httpx.get(sim.url.replace("https", "http") + "/_admin/health", timeout=3)
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.url + "/_admin/health", timeout=3)  # not trusted without the CA
    assert httpx.get(sim.url + "/_admin/health", verify=trusting(sim.ca_file)).status_code == 200


def test_arm_routing_is_case_insensitive_and_needs_api_version(sim):
    with client(sim) as http:
        lower = http.get(VM1.lower(), params={"api-version": "2026-04-01"})
        assert lower.status_code == 200 and lower.json()["id"] == VM1
        missing = http.get(VM1)
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
        wrong = http.get(VM1, params={"api-version": "1999-01-01"})
        assert wrong.json()["error"]["code"] == "NoRegisteredProviderFound"
        gone = http.get(VM1 + "x", params={"api-version": "2026-04-01"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "ResourceNotFound"
        assert (
            http.get(
                VM1, params={"api-version": "2026-04-01"}, headers={"Authorization": ""}
            ).status_code
            == 401
        )
        assert "x-ms-request-id" in lower.headers


def test_locks_are_honoured_and_percent_encoded_scopes_work(sim):
    encoded = VM1.replace("/", "%2F")
    with client(sim) as http:
        put = http.put(
            f"/{encoded}/providers/Microsoft.Authorization/locks/keep",
            params={"api-version": "2020-05-01"},
            json={"properties": {"level": "CanNotDelete"}},
        )
        assert put.status_code == 201
        delete = http.delete(VM1, params={"api-version": "2026-04-01"})
        assert delete.status_code == 409 and delete.json()["error"]["code"] == "ScopeLocked"
        tag = http.patch(
            f"{VM1}/providers/Microsoft.Resources/tags/default",
            params={"api-version": "2025-04-01"},
            json={"operation": "Merge", "properties": {"tags": {"a": "b"}}},
        )
        assert tag.status_code == 200, "CanNotDelete still allows writes"
        http.put(
            f"{RG}/providers/Microsoft.Authorization/locks/freeze",
            params={"api-version": "2020-05-01"},
            json={"properties": {"level": "ReadOnly"}},
        )
        frozen = http.patch(
            f"{VM1}/providers/Microsoft.Resources/tags/default",
            params={"api-version": "2025-04-01"},
            json={"operation": "Merge", "properties": {"tags": {"c": "d"}}},
        )
        assert frozen.status_code == 409, "a ReadOnly lock on the group covers the VM"


def test_vm_power_operations_are_asynchronous(sim):
    with client(sim) as http:
        accepted = http.post(f"{VM1}/deallocate", params={"api-version": "2026-04-01"})
        assert accepted.status_code == 202
        status_url = accepted.headers["Azure-AsyncOperation"]
        assert status_url.startswith(sim.url)
        assert http.get(status_url).json()["status"] == "InProgress"
        view = http.get(f"{VM1}/instanceView", params={"api-version": "2026-04-01"}).json()
        assert "PowerState/deallocating" in [s["code"] for s in view["statuses"]]
        # The operation takes the world's operation_seconds; poll as the SDK does.
        states: list[str] = []

        def finished() -> bool:
            states.append(http.get(status_url).json()["status"])
            return states[-1] != "InProgress"

        wait_until(finished, 10, "the deallocation to finish")
        assert states[-1] == "Succeeded", states
        view = http.get(f"{VM1}/instanceView", params={"api-version": "2026-04-01"}).json()
        assert "PowerState/deallocated" in [s["code"] for s in view["statuses"]]


def test_admin_api_faults_and_journal(sim):
    admin = SimAdmin(sim.url, sim.ca_file)
    fault = admin.fault(path="virtualMachines/vm-web-1$", status=503, retry_after=2, times=2)
    admin.fault(path="virtualMachines/vm-web-2$", latency_ms=300, times=1)
    with client(sim) as http:
        codes = [http.get(VM1, params={"api-version": "2026-04-01"}).status_code for _ in range(3)]
        assert codes == [503, 503, 200]
        started = time.monotonic()
        http.get(VM1.replace("vm-web-1", "vm-web-2"), params={"api-version": "2026-04-01"})
        assert time.monotonic() - started >= 0.3
        http.put(
            f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-x",
            params={"api-version": "2026-03-01"},
            json={"location": "westeurope"},
        )
    calls = admin.journal()
    assert [c["status"] for c in calls[:3]] == [503, 503, 200]
    assert calls[0]["fault"] == fault["id"]
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in admin.mutations()] == [
        ("PUT", "nsg-x")
    ]
    admin.fault(path="virtualMachines", drop=True, times=1)
    with client(sim) as http, pytest.raises(httpx.HTTPError):
        http.get(VM1, params={"api-version": "2026-04-01"})
    assert admin.journal(since=calls[-1]["seq"])[-1]["status"] is None
    admin.clear_journal()
    assert admin.journal() == []
    admin.amend(resources=[{"id": VM1, "health": "Available"}])
    assert {r["id"]: r["health"] for r in admin.state()["resources"]}[VM1] == "Available"
    admin.close()


def test_probabilistic_fault_is_reproducible_with_a_seed(tmp_path):
    from stanch.azuresim import AzureSim, load_world

    def run(seed: int) -> list[int]:
        simulator = AzureSim(
            load_world(WORLD), state_dir=tmp_path / str(seed), fault_seed=seed
        ).start()
        try:
            simulator.faults.add(
                __import__("azuresim.faults").faults.Fault(status=500, probability=0.5, times=None)
            )
            with client(simulator) as http:
                return [
                    http.get(VM1, params={"api-version": "2026-04-01"}).status_code
                    for _ in range(20)
                ]
        finally:
            simulator.stop()

    first = run(7)
    assert first == run(7)
    assert 0 < first.count(500) < 20


def test_stanch_sim_command(tmp_path: Path):
    port = free_port()
    state = tmp_path / "state"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stanch.cli.main",
            "sim",
            "--port",
            str(port),
            "--world",
            str(WORLD),
            "--state-dir",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("STANCH_")},
    )
    try:
        ca = state / "azuresim-ca.pem"
        deadline = time.monotonic() + 30
        while True:
            try:
                if (
                    ca.exists()
                    and httpx.get(
                        f"https://localhost:{port}/_admin/health", verify=trusting(ca)
                    ).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        listed = httpx.get(
            f"https://localhost:{port}/subscriptions/{SUB}/resourcegroups",
            params={"api-version": "2025-04-01"},
            headers=AUTH,
            verify=trusting(ca),
        )
        assert {g["name"] for g in listed.json()["value"]} == {"rg-web", "rg-ops"}
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    assert f"https://localhost:{port}" in output


def test_bad_world_file_exits_2(tmp_path: Path):
    bad = tmp_path / "world.yaml"
    bad.write_text("resources:\n  - {location: westeurope}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stanch.cli.main",
            "sim",
            "--world",
            str(bad),
            "--port",
            str(free_port()),
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "resources[0].id" in result.stderr
