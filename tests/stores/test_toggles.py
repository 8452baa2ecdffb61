"""The toggle store (stores/toggles.py): the kill switch and the log level in
one JSON file that fails closed. A runbook-level attack on it is
tests/activities/test_kill_switch.py; here the store alone, as the gateway and CLI use it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from stanch.stores.toggles import ToggleRefused, ToggleStore, ToggleStoreUnreadable


def unreadable_gauge() -> float | None:
    return REGISTRY.get_sample_value("stanch_kill_switch_unreadable")


def test_a_missing_file_switches_nothing_off(tmp_path: Path):
    store = ToggleStore(tmp_path / "toggles.json")
    assert store.allowed("quarantine_vm").allowed
    assert store.log_level() is None
    assert not store.path.exists(), "reading never creates the file"


@pytest.mark.parametrize(
    "content",
    ['{"remediation": {"enabled": "false"}}', '{"remediation": {"enabled": false,}', "", "[]"],
    ids=["a string for a boolean", "a syntax error", "an empty file", "not an object"],
)
def test_a_broken_file_halts_every_runbook_and_names_the_file(tmp_path: Path, content: str):
    store = ToggleStore(tmp_path / "toggles.json")
    store.path.write_text(content)

    answer = store.allowed("restart_vm")
    assert not answer.allowed
    assert answer.reason is not None and "toggles.json" in answer.reason
    assert unreadable_gauge() == 1.0
    view = store.view()
    assert not view.readable and view.remediation_halted
    assert store.log_level() is None, "a broken file keeps the level in force"
    with pytest.raises(ToggleStoreUnreadable, match=r"toggles\.json"):
        store.read()

    store.path.unlink()
    assert store.allowed("restart_vm").allowed
    assert unreadable_gauge() == 0.0


def test_one_runbook_switched_off_leaves_the_others_running(tmp_path: Path):
    store = ToggleStore(tmp_path / "toggles.json")
    store.set(False, "quarantine_vm", by="dave", reason="vendor outage")
    store.set_log_level("debug", by="dave")

    halted = store.allowed("quarantine_vm")
    assert not halted.allowed and halted.reason is not None and "vendor outage" in halted.reason
    assert store.allowed("restart_vm").allowed
    assert store.log_level() == "debug"


def test_writers_at_the_same_time_keep_each_others_change(tmp_path: Path):
    """Read, change, write under one lock: no writer loses another's runbook."""
    path = tmp_path / "toggles.json"
    names = [f"runbook_{i}" for i in range(16)]
    start = threading.Barrier(len(names))

    def switch_off(name: str) -> None:
        start.wait()
        ToggleStore(path).set(False, name, by="dave", reason=None)

    writers = [threading.Thread(target=switch_off, args=(n,)) for n in names]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert sorted(ToggleStore(path).read().runbooks) == sorted(names)


def test_the_store_refuses_a_write_that_is_not_clean(tmp_path: Path):
    store = ToggleStore(tmp_path / "toggles.json")
    store.set(False, None, by="dave", reason="drill")
    before = store.path.read_bytes()

    with pytest.raises(ToggleRefused, match="enabled"):
        store.set("false", None, by="dave", reason=None)  # type: ignore[arg-type]
    with pytest.raises(ToggleRefused, match="level"):
        store.set_log_level("chatty", by="dave")
    with pytest.raises(ToggleRefused, match="runbooks"):
        store.set(True, "quarantine-vm", by="dave", reason=None)
    assert store.path.read_bytes() == before
    assert not store.allowed("quarantine_vm").allowed
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".toggles-")] == []


def test_a_broken_store_is_replaced_only_when_asked(tmp_path: Path):
    store = ToggleStore(tmp_path / "toggles.json")
    store.path.write_text('{"runbooks": {"quarantine_vm": {"enabled": false,}}}')
    with pytest.raises(ToggleStoreUnreadable, match=r"toggles\.json"):
        store.set(True, None, by="dave", reason=None)
    assert not store.allowed("restart_vm").allowed, "still halted: nothing was written"

    store.set(False, None, by="dave", reason="mending", replace_unreadable=True)
    (kept,) = tmp_path.glob("toggles.json.unreadable-*")
    assert "quarantine_vm" in kept.read_text(), "the broken file is kept for its author"
    view = store.view()
    assert view.readable and view.remediation_halted and view.runbooks == {}
