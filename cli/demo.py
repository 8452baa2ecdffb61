"""`stanch demo` (`make demo`): the main job, end to end, on a throwaway stack.

A real Azure Monitor sample alert opens an incident; tier 1 is paged, nobody
answers, tier 2 is paged; Bob acknowledges from the CLI and paging stops;
Azure Monitor sends the Resolved alert; the incident closes after its reopen
window; the timeline is printed. Then a VM in azuresim goes down: its incident
runs quarantine_vm, which asks for approval; Carol approves from the CLI; the
VM is tagged, locked and isolated, and the incident is contained. Every step
goes through the same processes and commands an on-call engineer uses; people
act through the on-call API with the development credential `stanch dev`
made for each of them (`--as`), and someone without one is refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from stanch.azuresim.admin import SimAdmin
from stanch.cli.packaged import EXAMPLES
from stanch.harness.waiting import wait_until as harness_wait_until
from stanch.stores.page_file import read_pages

SAMPLE = EXAMPLES / "alerts" / "test_action_resource_health.json"
VM_ALERT = EXAMPLES / "demo" / "vm-web-1-unavailable.json"
STATE = Path(".stanch-demo")
PORTS = {
    "--http-port": 18080,
    "--temporal-port": 17233,
    "--ui-port": 18233,
    "--sim-port": 18443,
    "--metrics-port": 19464,
}


def stanch(
    *args: str, check: bool = True, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A `stanch` command from another terminal. People act with `--as`, which
    picks that person's development credential `stanch dev` made, or with a
    `token` of their own (STANCH_API_TOKEN)."""
    env = {k: v for k, v in os.environ.items() if k != "STANCH_API_TOKEN"}
    if token is not None:
        env["STANCH_API_TOKEN"] = token
    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "--state-dir", str(STATE), *args],
        capture_output=True,
        text=True,
        cwd=os.getcwd(),
        env=env,
    )
    if check and result.returncode != 0:
        raise DemoFailed(f"stanch {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


class DemoFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def wait_until(what: str, check: Callable[[], object], timeout: float = 60) -> None:
    try:
        harness_wait_until(check, timeout, what)
    except AssertionError as e:
        raise DemoFailed(f"timed out waiting for {e}") from None


def pages() -> list[dict[str, Any]]:
    return read_pages(STATE / "pages.jsonl")


def state_of(incident: str) -> dict[str, object]:
    shown = json.loads(stanch("show", incident, "--json").stdout)
    state: dict[str, object] = shown["view"]["state"]
    return state


def pending_approval(incident: str) -> bool:
    runbook: Any = state_of(incident).get("runbook") or {}
    return bool(runbook.get("pending"))


def run_demo() -> int:
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir()
    shutil.copy(EXAMPLES / "demo.yaml", STATE / "stanch.yaml")
    log = (STATE / "dev.log").open("w")
    ports = [str(x) for pair in PORTS.items() for x in pair]
    say("Starting the embedded stack: Temporal dev server, worker, gateway")
    dev = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stanch.cli.main",
            "--state-dir",
            str(STATE),
            "dev",
            "--config",
            str(STATE / "stanch.yaml"),
            *ports,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        return _walkthrough()
    except DemoFailed as e:
        print(f"\ndemo failed: {e}\n--- dev log ---\n{(STATE / 'dev.log').read_text()}")
        return 1
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
        say(f"Stack stopped (exit {dev.returncode}); state kept in {STATE}/")


def _walkthrough() -> int:
    wait_until("the stack's env file", lambda: (STATE / "env").exists(), timeout=120)
    gateway = f"http://127.0.0.1:{PORTS['--http-port']}"
    wait_until("the gateway", lambda: _healthy(gateway))
    print(f"gateway {gateway}, Temporal Web UI http://127.0.0.1:{PORTS['--ui-port']}")

    say(f"Azure Monitor fires: {SAMPLE.name}")
    sent = json.loads(stanch("alert", "send", str(SAMPLE)).stdout)
    print(json.dumps(sent, indent=2))
    incident = sent["incident_id"]

    say("The incident opens and pages tier 1 (Alice)")
    wait_until("the first page", lambda: len(pages()) >= 1)
    print(stanch("incidents").stdout)

    say("Azure retries the same webhook: counted once, no second incident")
    again = json.loads(stanch("alert", "send", str(SAMPLE)).stdout)
    print(f"deduplicated={again['deduplicated']} incident={again['incident_id']}")

    say("Nobody acknowledges within 4s: escalating to tier 2 (Bob)")
    wait_until("the tier 2 page", lambda: len(pages()) >= 2, timeout=30)
    for page in pages():
        print(f"  page -> tier {page['tier']}: {page['text']}")

    say("Bob acknowledges from the CLI with his credential: stanch ack --as bob")
    print(stanch("ack", incident, "--as", "bob").stdout.strip())
    paged = len(pages())
    say("Mallory, who is not on the roster, has no credential: a made-up token is refused")
    refused = stanch("resolve", incident, check=False, token=secrets.token_urlsafe(32))
    print(f"exit {refused.returncode}: {refused.stderr.strip()}")
    if refused.returncode != 2 or "401" not in refused.stderr:
        raise DemoFailed("a resolve with a made-up token was not refused by the API")
    if state_of(incident)["status"] != "acknowledged":
        raise DemoFailed("the refused resolve changed the incident")
    time.sleep(6)  # longer than a tier timeout: no further page may go out
    if len(pages()) != paged:
        raise DemoFailed("paging continued after the ack")
    print(f"no page after the ack ({paged} pages in all)")

    say("Azure Monitor sends the Resolved alert")
    resolved = json.loads(SAMPLE.read_text())
    resolved["data"]["essentials"]["monitorCondition"] = "Resolved"
    resolved["data"]["essentials"]["resolvedDateTime"] = "2025-04-15T18:49:45.304Z"
    resolved_file = STATE / "resolved-alert.json"
    resolved_file.write_text(json.dumps(resolved))
    print(stanch("alert", "send", str(resolved_file)).stdout.strip())
    wait_until("resolution", lambda: state_of(incident)["status"] in ("resolved", "closed"))
    say("No alert within the 3s reopen window: the incident closes")
    wait_until("closure", lambda: state_of(incident)["status"] == "closed", timeout=30)

    say("The incident, as on-call sees it")
    print(stanch("show", incident).stdout)
    quarantine()
    return 0


def quarantine() -> None:
    say(f"A VM goes down: Resource Health reports vm-web-1 unavailable ({VM_ALERT.name})")
    sent = json.loads(stanch("alert", "send", str(VM_ALERT)).stdout)
    incident = sent["incident_id"]
    say("The incident runs quarantine_vm: confirm, capture evidence, then ask for approval")
    wait_until("the approval request", lambda: pending_approval(incident))
    print(stanch("show", incident).stdout)

    say("Bob (a responder, not an approver) tries to approve: refused by the API")
    refused = stanch("approve", incident, "isolate", "--as", "bob", check=False)
    print(f"exit {refused.returncode}: {refused.stderr.strip()}")
    if refused.returncode != 2 or not ("403" in refused.stderr or "409" in refused.stderr):
        raise DemoFailed("a non-approver's approval was not refused by the API")
    if not pending_approval(incident):
        raise DemoFailed("the refused approval changed the runbook")

    say("Carol, an approver, approves from the CLI: stanch approve ... isolate --as carol")
    print(stanch("approve", incident, "isolate", "--as", "carol").stdout.strip())
    wait_until("containment", lambda: state_of(incident)["status"] == "contained", timeout=60)

    say("What azuresim saw: exactly these changes, and no delete")
    env = dict(line.split("=", 1) for line in (STATE / "env").read_text().splitlines() if line)
    admin = SimAdmin(env["STANCH_AZURE_ENDPOINT"], Path(env["STANCH_AZURE_CA_FILE"]))
    for call in admin.mutations():
        print(f"  {call['method']:<6} {call['status']}  {call['path'].split('/providers/', 1)[-1]}")
    if any(call["method"] == "DELETE" for call in admin.mutations()):
        raise DemoFailed("quarantine deleted something")
    admin.close()

    say("The incident: contained, with the runbook's steps on its timeline")
    print(stanch("show", incident).stdout)


def _healthy(gateway: str) -> bool:
    try:
        return httpx.get(f"{gateway}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
