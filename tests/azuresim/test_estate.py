"""azuresim with a state directory keeps its estate and journal across a
restart (review §5: `stanch dev`'s simulator forgot a runbook's tag and the
journal of it), until asked to start again; a damaged file is a clear error."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import httpx
import pytest

from stanch.azuresim import AzureSim, CorruptEstate, load_world
from stanch.azuresim.admin import SimAdmin, trusting
from stanch.testing.estate import RG, VM1, WORLD

AUTH = {"Authorization": "Bearer anything"}


def started(directory, reset: bool = False) -> AzureSim:
    world = load_world(WORLD)
    world.operation_seconds = 0.2
    return AzureSim(world, state_dir=directory, reset=reset).start()


def change_the_estate(sim: AzureSim) -> None:
    with httpx.Client(
        base_url=sim.url, verify=trusting(sim.ca_file), headers=AUTH, timeout=10
    ) as http:
        http.patch(
            f"{VM1}/providers/Microsoft.Resources/tags/default",
            params={"api-version": "2025-04-01"},
            json={"operation": "Merge", "properties": {"tags": {"stanch.disk-guard": "inc-1"}}},
        ).raise_for_status()
        http.put(
            f"{RG}/providers/Microsoft.Authorization/locks/keep",
            params={"api-version": "2020-05-01"},
            json={"properties": {"level": "CanNotDelete"}},
        ).raise_for_status()
        http.post(f"{VM1}/deallocate", params={"api-version": "2026-04-01"}).raise_for_status()


def vm1(admin: SimAdmin) -> dict:
    return next(r for r in admin.state()["resources"] if r["id"] == VM1)


def test_the_estate_and_journal_survive_a_restart(tmp_path):
    first = started(tmp_path)
    change_the_estate(first)
    admin = SimAdmin(first.url, first.ca_file)
    before = admin.journal()
    ca = first.ca_file.read_bytes()
    first.stop()
    admin.close()

    second = started(tmp_path)
    try:
        assert second.restored and second.ca_file.read_bytes() == ca, "clients keep trusting it"
        admin = SimAdmin(second.url, second.ca_file)
        resource = vm1(admin)
        assert resource["tags"]["stanch.disk-guard"] == "inc-1"
        assert [lock["name"] for lock in admin.state()["locks"]] == ["keep"]
        # The deallocation under way when it stopped finishes on time after the restart.
        assert resource["powerState"] in ("deallocating", "deallocated")
        journal = admin.journal()
        assert journal == before, "the journal holds the calls from before the restart"
        assert [c["method"] for c in admin.mutations()] == ["PATCH", "PUT", "POST"]
        admin.fault(path="nothing", times=1)  # faults are not kept: a drill arms its own
        with httpx.Client(
            base_url=second.url, verify=trusting(second.ca_file), headers=AUTH, timeout=10
        ) as http:
            http.get(VM1, params={"api-version": "2026-04-01"})
        assert admin.journal()[-1]["seq"] == before[-1]["seq"] + 1, "seq carries on"
        admin.clear_journal()
        admin.close()
    finally:
        second.stop()

    third = started(tmp_path)
    try:
        admin = SimAdmin(third.url, third.ca_file)
        assert admin.journal() == [], "a clear is kept too"
        assert vm1(admin)["powerState"] == "deallocated"
        admin.close()
    finally:
        third.stop()
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_a_reset_starts_from_the_world_on_request_only(tmp_path):
    sim = started(tmp_path)
    change_the_estate(sim)
    sim.stop()
    again = started(tmp_path, reset=True)
    try:
        admin = SimAdmin(again.url, again.ca_file)
        assert not again.restored
        assert "stanch.disk-guard" not in vm1(admin)["tags"] and admin.state()["locks"] == []
        assert admin.journal() == []
        change_the_estate(again)
        response = httpx.post(f"{again.url}/_admin/reset", verify=trusting(again.ca_file))
        assert response.status_code == 204
        assert vm1(admin)["powerState"] == "running" and admin.state()["locks"] == []
        admin.close()
    finally:
        again.stop()


def test_a_damaged_estate_is_a_clear_error_and_stanch_sim_exits_2(tmp_path):
    started(tmp_path).stop()
    estate = tmp_path / "azuresim-estate.json"
    estate.write_text('{"format": 1, "resources": [')
    with pytest.raises(CorruptEstate, match=r"azuresim-estate\.json: not JSON"):
        started(tmp_path)
    estate.write_text('{"format": 99}')
    with pytest.raises(CorruptEstate, match="format 99"):
        started(tmp_path)
    (tmp_path / "azuresim-journal.jsonl").write_text('{"seq": 1}\nnot json\n')
    estate.unlink()
    with pytest.raises(CorruptEstate, match=r"azuresim-journal\.jsonl, line 2"):
        started(tmp_path)

    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "sim", "--port", "0", "--world", str(WORLD),
         "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("STANCH_")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "azuresim-journal.jsonl, line 2" in result.stderr and "--reset" in result.stderr
