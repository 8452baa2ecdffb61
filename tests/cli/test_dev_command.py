"""`stanch dev` and the on-call CLI, as processes, exactly as DESIGN.md's public
interface describes them: flags, `<state-dir>/env`, STANCH_* settings, exit codes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stanch.harness.ports import free_port
from stanch.harness.waiting import wait_until
from tests.support.cli import run_stanch
from tests.support.logs import logged

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "alerts" / "test_action_resource_health.json"
EXPECTED_ENV = {
    "STANCH_TEMPORAL_ADDRESS",
    "STANCH_TEMPORAL_NAMESPACE",
    "STANCH_TASK_QUEUE",
    "STANCH_CONFIG",
    "STANCH_ALERT_TOKEN",
    "STANCH_GATEWAY_URL",
    "STANCH_WEB_UI_URL",
    "STANCH_STATE_DIR",
    "STANCH_AZURE_SUBSCRIPTION_ID",
    "STANCH_AZURE_ENDPOINT",
    "STANCH_AZURE_CA_FILE",
}


class DevStack:
    """A `stanch dev` process, its output in `<workdir>/dev.log`."""

    def __init__(self, workdir: Path, process: subprocess.Popen[str], ports: dict[str, int]):
        self.workdir, self.process, self.ports = workdir, process, ports
        self.state = workdir / "state"
        self.log = workdir / "dev.log"

    def stanch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_stanch(self.state, self.workdir, *args)

    def env(self) -> dict[str, str]:
        lines = (self.state / "env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line)

    def output(self) -> str:
        return self.log.read_text()

    def logged(self, message: str) -> bool:
        """Whether a JSON log line of the stack says `message`."""
        return logged(self.log, message)

    def interrupt(self) -> None:
        """Ctrl-C, as in the terminal."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dev_stack(workdir: Path) -> DevStack:
    """`stanch dev` on free ports with examples/demo.yaml (long timeouts, and
    dave an admin), healthy before it is returned."""
    config = workdir / "stanch.yaml"
    shutil.copy(ROOT / "examples" / "demo.yaml", config)
    text = config.read_text().replace("timeout: 4s", "timeout: 1h")
    # Dave holds the roster role admin: his development credential may flip toggles.
    carol = "  - {id: carol, name: Carol Chen, roles: [approver]}\n"
    assert carol in text
    text = text.replace(
        carol, carol + "  - {id: dave, name: Dave Diaz, roles: [approver, admin]}\n"
    )
    config.write_text(text.replace("reopen_window: 3s", "reopen_window: 1h"))
    ports = {
        "http": free_port(),
        "temporal": free_port(),
        "ui": free_port(),
        "sim": free_port(),
        "metrics": free_port(),
    }
    with (workdir / "dev.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stanch.cli.main",
                "dev",
                "--state-dir",
                str(workdir / "state"),
                "--http-port",
                str(ports["http"]),
                "--temporal-port",
                str(ports["temporal"]),
                "--ui-port",
                str(ports["ui"]),
                "--sim-port",
                str(ports["sim"]),
                "--metrics-port",
                str(ports["metrics"]),
                "--config",
                str(config),
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    stack = DevStack(workdir, process, ports)

    def up() -> bool:
        assert process.poll() is None, stack.output()
        try:
            return httpx.get(f"http://127.0.0.1:{ports['http']}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(lambda: (stack.state / "env").exists(), 90, "stanch dev's env file")
        wait_until(up, 90, "stanch dev's gateway")
    except BaseException:
        stack.interrupt()
        raise
    return stack


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """One `stanch dev` for the tests that only use it (the Ctrl-C test stops its own)."""
    stack = start_dev_stack(tmp_path_factory.mktemp("dev"))
    yield stack
    stack.interrupt()


def test_worker_and_gateway_serve_metrics(dev_stack: DevStack):
    sent = dev_stack.stanch("alert", "send", str(SAMPLE))
    assert sent.returncode == 0, sent.stderr
    gateway = httpx.get(f"http://127.0.0.1:{dev_stack.ports['http']}/metrics").text
    assert 'stanch_alerts_received_total{condition="Fired"}' in gateway
    deadline = time.monotonic() + 30
    while True:
        worker = httpx.get(f"http://127.0.0.1:{dev_stack.ports['metrics']}/metrics").text
        if "stanch_incidents_opened" in worker and "stanch_pages_sent" in worker:
            break
        assert time.monotonic() < deadline, worker[-2000:]
        time.sleep(0.5)
    assert "temporal_workflow_task_execution_latency" in worker or "temporal_" in worker


def test_log_level_changes_at_run_time(dev_stack: DevStack):
    changed = dev_stack.stanch("toggle", "log-level", "debug", "--as", "dave")
    assert changed.returncode == 0, changed.stderr
    refused = dev_stack.stanch("toggle", "log-level", "chatty", "--as", "dave")
    assert refused.returncode == 2 and "log-level" in refused.stderr
    # The stack reads the store every 2 s, and says so when the level changes.
    wait_until(lambda: dev_stack.logged("log level is now debug"), 30, "the stack at debug")


def test_env_file_carries_the_public_settings(dev_stack: DevStack):
    env = dev_stack.env()
    assert set(env) == EXPECTED_ENV
    assert env["STANCH_TEMPORAL_ADDRESS"] == f"127.0.0.1:{dev_stack.ports['temporal']}"
    assert env["STANCH_GATEWAY_URL"] == f"http://127.0.0.1:{dev_stack.ports['http']}"
    assert env["STANCH_WEB_UI_URL"] == f"http://127.0.0.1:{dev_stack.ports['ui']}"
    assert (dev_stack.state / "temporal.db").exists(), "persistent SQLite under the state dir"
    assert oct((dev_stack.state / "env").stat().st_mode & 0o777) == "0o600"
    assert env["STANCH_AZURE_ENDPOINT"] == f"https://localhost:{dev_stack.ports['sim']}"
    assert env["STANCH_AZURE_CA_FILE"] == str((dev_stack.state / "azuresim-ca.pem").resolve())
    assert env["STANCH_AZURE_SUBSCRIPTION_ID"] == "00000000-0000-0000-0000-0000000000aa"
    assert env["STANCH_AZURE_ENDPOINT"] == f"https://localhost:{dev_stack.ports['sim']}"
    assert env["STANCH_AZURE_CA_FILE"] == str((dev_stack.state / "azuresim-ca.pem").resolve())
    assert env["STANCH_AZURE_SUBSCRIPTION_ID"] == "00000000-0000-0000-0000-0000000000aa"


def test_on_call_from_the_cli(dev_stack: DevStack):
    sent = dev_stack.stanch("alert", "send", str(SAMPLE))
    assert sent.returncode == 0, sent.stderr
    incident = json.loads(sent.stdout)["incident_id"]

    deadline = time.monotonic() + 30
    while "paged" not in (shown := dev_stack.stanch("show", incident)).stdout:
        assert time.monotonic() < deadline, shown.stdout + shown.stderr
        time.sleep(0.2)

    listing = dev_stack.stanch("incidents", "--json")
    assert incident in [row["incident_id"] for row in json.loads(listing.stdout)]

    refused = dev_stack.stanch("ack", incident, "--as", "mallory")
    assert refused.returncode == 2 and "not on the roster" in refused.stderr

    acked = dev_stack.stanch("ack", incident, "--as", "alice", "--json")
    assert acked.returncode == 0, acked.stderr
    assert json.loads(acked.stdout)["status"] == "acknowledged"
    again = dev_stack.stanch("ack", incident, "--as", "alice")
    assert again.returncode == 0 and "nothing changed" in again.stdout

    role = dev_stack.stanch("role", incident, "incident_commander", "bob", "--as", "alice")
    assert role.returncode == 0, role.stderr
    resolved = dev_stack.stanch("resolve", incident, "--as", "bob", "--note", "VM rebooted")
    assert resolved.returncode == 0, resolved.stderr

    detail = json.loads(dev_stack.stanch("show", incident, "--json").stdout)
    state = detail["view"]["state"]
    assert state["status"] == "resolved" and state["roles"] == {"incident_commander": "bob"}
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.index("acknowledged") < kinds.index("role_assigned") < kinds.index("resolved")
    actors = {e["kind"]: e["actor"] for e in detail["timeline"]}
    assert (actors["acknowledged"], actors["resolved"]) == ("alice", "bob")

    listed = dev_stack.stanch("incidents", "--status", "resolved", "--json")
    assert incident in [row["incident_id"] for row in json.loads(listed.stdout)]


def test_cli_bad_input_exits_2(dev_stack: DevStack):
    unknown = dev_stack.stanch("show", "0123456789abcdef0123")
    assert unknown.returncode == 2 and "no incident" in unknown.stderr
    ack_unknown = dev_stack.stanch("ack", "0123456789abcdef0123", "--as", "alice")
    assert ack_unknown.returncode == 2 and "no open incident" in ack_unknown.stderr
    bad_status = dev_stack.stanch("incidents", "--status", "exploded")
    assert bad_status.returncode == 2 and "--status" in bad_status.stderr
    missing = dev_stack.stanch("alert", "send", str(dev_stack.workdir / "nope.json"))
    assert missing.returncode == 2
    malformed = dev_stack.workdir / "bad.json"
    malformed.write_text(
        '{"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {}}}'
    )
    refused = dev_stack.stanch("alert", "send", str(malformed))
    assert refused.returncode == 2 and "data.essentials.alertId" in refused.stderr


def test_dev_provisions_a_credential_per_roster_person(dev_stack: DevStack):
    path = dev_stack.state / "credentials.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    made = json.loads(path.read_text())
    assert made["gateway_url"] == dev_stack.env()["STANCH_GATEWAY_URL"]
    roles = {c["person"]: c["role"] for c in made["credentials"]}
    assert roles == {"alice": "responder", "bob": "responder", "carol": "approver", "dave": "admin"}
    assert all(len(c["token"]) >= 32 for c in made["credentials"])
    # The gateway accepts them, each as its own person.
    me = httpx.get(
        f"{dev_stack.env()['STANCH_GATEWAY_URL']}/api/incidents",
        headers={"Authorization": f"Bearer {made['credentials'][0]['token']}"},
    )
    assert me.status_code == 200, me.text
    # Admin operations need dave's admin credential.
    refused = dev_stack.stanch("toggle", "log-level", "info", "--as", "carol")
    assert refused.returncode == 2 and "403" in refused.stderr


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path):
    """Its own stack, which it stops: the other tests of this file share one."""
    dev_stack = start_dev_stack(tmp_path)
    try:
        # What is in flight when Ctrl-C comes: a log level changed at run time.
        changed = dev_stack.stanch("toggle", "log-level", "debug", "--as", "dave")
        assert changed.returncode == 0, changed.stderr
        wait_until(lambda: dev_stack.logged("log level is now debug"), 30, "the stack at debug")
        dev_stack.process.send_signal(signal.SIGINT)
        dev_stack.process.wait(timeout=60)
    finally:
        dev_stack.interrupt()
    output = dev_stack.output()
    assert dev_stack.process.returncode == 0, output
    assert "stanch dev stopped" in output
    assert not (dev_stack.state / "env").exists()
    assert not (dev_stack.state / "credentials.json").exists()  # valid only while it runs
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{dev_stack.ports['http']}/healthz", timeout=2)
    # The Temporal server went with it: its port is free again.
    import socket

    for port in (dev_stack.ports["temporal"], dev_stack.ports["sim"]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
