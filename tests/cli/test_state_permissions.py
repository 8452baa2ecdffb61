"""`stanch dev`'s state is private (review finding #23, issue 11 item 9), and a
whole stack at debug level prints no secret (finding #3).

A real `stanch dev` process, paging a real webhook on loopback, runs an
incident that captures evidence and switches its log level to debug through
the admin API; then every file and directory under the state dir is checked,
and the stack's whole output is searched for the webhook URL and the tokens."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from stanch.cli.dev import private_state_dir
from stanch.harness.ports import free_port
from stanch.harness.waiting import wait_until
from tests.support.cli import run_stanch
from tests.support.logs import logged
from tests.support.webhooks import Receiver

ROOT = Path(__file__).resolve().parents[2]
VM_ALERT = ROOT / "examples" / "demo" / "vm-web-1-unavailable.json"
SECRET = "T0DEV/B0DEV/devhookcredential"


class Stack:
    """A `stanch dev` process, its whole output in `<workdir>/dev.log`."""

    def __init__(self, workdir: Path, process: subprocess.Popen[str], receiver: Receiver):
        self.workdir, self.process, self.receiver = workdir, process, receiver
        self.state = workdir / "state"
        self.log = workdir / "dev.log"

    def stanch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_stanch(self.state, self.workdir, *args)


@pytest.fixture
def stack(tmp_path: Path, receiver: Receiver) -> Iterator[Stack]:
    """A stack that has run an incident at debug level: switched through the
    admin API, paged the webhook, captured evidence."""
    workdir = tmp_path
    policy = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    policy["roster"].append({"id": "dave", "name": "Dave", "roles": ["admin"]})
    for tier in policy["escalation_policies"]["default"]["tiers"]:
        tier["timeout"] = "1h"
    policy["channels"] = [
        {"name": "pager-file", "type": "file", "path": str(workdir / "state" / "pages.jsonl")},
        # A name no redaction rule knows: only the quiet HTTP loggers keep it out.
        {"name": "chat", "type": "webhook", "format": "slack", "url": "${H3_PAGING_ENDPOINT}"},
    ]
    (workdir / "stanch.yaml").write_text(yaml.safe_dump(policy))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env["H3_PAGING_ENDPOINT"] = f"{receiver.url}/{SECRET}"
    http = free_port()
    ports = [str(p) for p in (http, free_port(), free_port(), free_port(), free_port())]
    with (workdir / "dev.log").open("w") as log:
        process = subprocess.Popen(
            [
                *(
                    sys.executable,
                    "-m",
                    "stanch.cli.main",
                    "dev",
                    "--state-dir",
                    str(workdir / "state"),
                ),
                *("--http-port", ports[0], "--temporal-port", ports[1], "--ui-port", ports[2]),
                *("--sim-port", ports[3], "--metrics-port", ports[4]),
                *("--config", str(workdir / "stanch.yaml")),
            ],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    stack = Stack(workdir, process, receiver)

    def healthy() -> bool:
        assert process.poll() is None, stack.log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{http}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(lambda: (stack.state / "env").exists() and healthy(), 120, "stanch dev")
        changed = stack.stanch("toggle", "log-level", "debug", "--as", "dave")
        assert changed.returncode == 0, changed.stderr
        sent = stack.stanch("alert", "send", str(VM_ALERT))
        assert sent.returncode == 0, sent.stderr
        incident = json.loads(sent.stdout)["incident_id"]
        wait_until(lambda: stack.receiver.received, 60, "a page at the webhook")
        evidence = stack.state / "evidence" / incident / "vm-web-1.json"
        wait_until(evidence.exists, 60, "the evidence bundle")
        wait_until((stack.state / "pages.jsonl").exists, 60, "the page file")
        wait_until(lambda: logged(stack.log, "log level is now debug"), 60, "the stack at debug")
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_every_file_in_the_state_dir_is_private(stack: Stack):
    expected = {"alert-token", "env", "pages.jsonl", "audit.db", "temporal.db", "toggles.json"}
    assert expected <= {p.name for p in stack.state.iterdir()}
    assert stat.S_IMODE(stack.state.stat().st_mode) == 0o700
    wider = {
        str(path.relative_to(stack.state)): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in stack.state.rglob("*")
        if not path.is_symlink()
        and stat.S_IMODE(path.lstat().st_mode) != (0o700 if path.is_dir() else 0o600)
    }
    assert wider == {}, "files and directories readable beyond their owner"

    # From the first byte, not chmod'ed afterwards: whatever the stack and its
    # Temporal server create, they create under this umask.
    for pid in (stack.process.pid, *children(stack.process.pid)):
        assert umask_of(pid) == 0o077, f"process {pid}"


def test_the_stacks_output_carries_no_secret_at_debug_level(stack: Stack):
    credentials = json.loads((stack.state / "credentials.json").read_text())
    tokens = [c["token"] for c in credentials["credentials"]]
    alert_token = (stack.state / "alert-token").read_text().strip()
    stack.process.send_signal(signal.SIGINT)
    stack.process.wait(timeout=60)
    output = stack.log.read_text()
    assert stack.process.returncode == 0, output[-3000:]

    logs = [line for line in output.splitlines() if line.startswith("{")]
    assert logged(output, "log level is now debug")
    assert SECRET not in output, "the webhook URL reached the output"
    assert not [line for line in logs if alert_token in line or any(t in line for t in tokens)]
    assert not [line for line in logs if json.loads(line)["logger"].startswith("httpx")]


def test_an_older_state_dir_is_tightened_at_start(tmp_path):
    state = tmp_path / "state"
    (state / "evidence" / "abc").mkdir(parents=True)
    (state / "evidence" / "abc" / "vm.json").write_text("{}")
    (state / "audit.db").write_text("")
    (state / "alert-token").write_text("t" * 32)  # what says the directory is stanch's
    for path in (state, state / "evidence", state / "evidence" / "abc"):
        path.chmod(0o755)
    (state / "audit.db").chmod(0o644)
    outside = tmp_path / "not-ours"
    outside.write_text("")
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)

    before = os.umask(0o022)
    try:
        private_state_dir(state)
        assert os.umask(0o022) == 0o077
    finally:
        os.umask(before)
    modes = {
        str(p.relative_to(state)): stat.S_IMODE(p.stat().st_mode)
        for p in state.rglob("*")
        if not p.is_symlink()
    }
    assert modes == {
        "evidence": 0o700,
        "evidence/abc": 0o700,
        "evidence/abc/vm.json": 0o600,
        "audit.db": 0o600,
        "alert-token": 0o600,
    }
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644, "a link's target is not ours"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def umask_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask in /proc (Linux 4.7 or later needed)")


def test_a_directory_that_is_not_stanchs_keeps_its_modes(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "notes.txt").write_text("")
    (home / "notes.txt").chmod(0o644)
    before = os.umask(0o022)
    try:
        private_state_dir(home)
    finally:
        os.umask(before)
    assert stat.S_IMODE((home / "notes.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
