"""People's CLI commands prove who is acting (review finding #11): they go
through the on-call API with a credential, never to Temporal under a typed
name. The CLI runs as a process against a real gateway, worker and Temporal,
with only what a `stanch dev` state dir gives it (its env file, and the
development credentials when the stack made them)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from stanch.cli.dev import env_file_lines
from stanch.client.incidents import IncidentDetail, fetch_incident
from stanch.harness.ports import free_port
from stanch.models.config import ApiRole
from stanch.models.dev_credentials import (
    FILE_NAME,
    api_role_for,
    provision,
    read_dev_credentials,
    write_dev_credentials,
)
from stanch.models.incident import IncidentState
from stanch.stores.audit import SqliteAuditLog
from stanch.stores.policy import load_config
from stanch.stores.toggles import ToggleStore
from tests.support.alerts import unique_alert
from tests.support.plans import policy_file
from tests.support.stack import gateway_at, stack_settings

ROOT = Path(__file__).resolve().parents[2]
VM_ALERT = ROOT / "examples" / "demo" / "vm-web-1-unavailable.json"
# Carol is an approver on the roster; one of her tokens is scoped down to responder.
CAROL_RESPONDER = "carol-scoped-down-" + secrets.token_hex(16)
CAROL_APPROVER = "carol-full-approver-" + secrets.token_hex(16)


@dataclass
class DevLike:
    """What `stanch dev` leaves for other terminals: a state dir with its env
    file and the development credentials its gateway accepts."""

    client: Client
    url: str
    alert_token: str
    state: Path
    config_home: Path
    toggles: Path
    audit: Path

    async def stanch(
        self, *args: str, state: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
        # Never the developer's own `stanch login` cache.
        clean["XDG_CONFIG_HOME"] = str(self.config_home)
        command = [sys.executable, "-m", "stanch.cli.main", "--state-dir", str(state or self.state)]
        return await asyncio.to_thread(
            subprocess.run,
            [*command, *args],
            capture_output=True,
            text=True,
            env={**clean, **env},
            timeout=60,
        )

    async def open_incident(self, body: dict[str, Any] | None = None) -> str:
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{self.url}/alerts",
                json=body or unique_alert(),
                params={"token": self.alert_token},
                timeout=30,
            )
        assert answer.status_code == 202, answer.text
        incident: str = answer.json()["incident_id"]
        await self.state_when(incident, lambda s: s.escalation.pages_sent >= 1)
        return incident

    async def detail(self, incident: str) -> IncidentDetail:
        return await fetch_incident(self.client, incident)

    async def state_when(
        self, incident: str, check: Callable[[IncidentState], bool], timeout: float = 30
    ) -> IncidentState:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            state = (await self.detail(incident)).view.state
            if check(state):
                return state
            assert asyncio.get_running_loop().time() < deadline, state.model_dump_json(indent=1)
            await asyncio.sleep(0.1)


@pytest.fixture
async def dev_like(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, azure: Any
) -> AsyncIterator[DevLike]:
    from stanch.worker import build_worker

    roster = [
        {"id": "alice", "roles": ["responder"]},
        {"id": "bob", "roles": ["responder"]},
        {"id": "carol", "roles": ["approver"]},
        {"id": "dave", "roles": ["approver", "admin"]},
    ]
    config = policy_file(
        tmp_path,
        roster=roster,
        access={
            "tokens": [
                {"person": "carol", "role": "responder", "token": CAROL_RESPONDER},
                {"person": "carol", "role": "approver", "token": CAROL_APPROVER},
            ]
        },
        approvals={"tiers": [{"timeout": "15m"}], "reserved_for_approvers": ["high"]},
        runbooks=[
            {
                "runbook": "quarantine_vm",
                "match": {"resource_ids": ["*/virtualmachines/vm-web-*"]},
            }
        ],
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "state"
    credentials = state / FILE_NAME
    write_dev_credentials(credentials, provision(load_config(config), url))
    alert_token = secrets.token_urlsafe(24)
    settings = stack_settings(
        dev_env, tmp_path, task_queue, config, alert_token, port, dev_credentials=credentials
    )
    (state / "env").write_text("\n".join(env_file_lines(settings, state)) + "\n")
    (tmp_path / "config-home").mkdir()
    async with build_worker(dev_env.client, settings, azure), gateway_at(settings, port):
        yield DevLike(
            client=dev_env.client,
            url=url,
            alert_token=alert_token,
            state=state,
            config_home=tmp_path / "config-home",
            toggles=settings.toggles_path,
            audit=settings.audit_path,
        )


def untouched(detail: IncidentDetail) -> tuple[Any, ...]:
    """What an attempt must not change: the state people act on, and the timeline."""
    s = detail.view.state
    return (s.status, s.acknowledged_by, s.resolved_by, dict(s.roles), len(detail.timeline))


async def test_as_outside_a_dev_stack_is_refused_and_changes_nothing(
    dev_like: DevLike, tmp_path: Path
):
    """The review's reproduction: `stanch ack ID --as dave` with only the env
    file of the stack and no credential file used to acknowledge as dave."""
    incident = await dev_like.open_incident()
    before = untouched(await dev_like.detail(incident))
    only_env = tmp_path / "only-env"
    only_env.mkdir()
    (only_env / "env").write_text((dev_like.state / "env").read_text())

    refused = await dev_like.stanch("ack", incident, "--as", "dave", state=only_env)

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--as dave" in refused.stderr
    assert "STANCH_API_TOKEN" in refused.stderr and "stanch login" in refused.stderr
    assert untouched(await dev_like.detail(incident)) == before
    # No credential at all: told what to do, nothing changed.
    bare = await dev_like.stanch("ack", incident, state=only_env)
    assert bare.returncode == 2 and "no credential" in bare.stderr
    assert untouched(await dev_like.detail(incident)) == before


async def test_as_is_refused_with_credentials_made_for_another_stack(
    dev_like: DevLike, tmp_path: Path
):
    incident = await dev_like.open_incident()
    before = untouched(await dev_like.detail(incident))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "env").write_text((dev_like.state / "env").read_text())
    other = read_dev_credentials(dev_like.state / FILE_NAME)
    other.gateway_url = "http://127.0.0.1:1"
    write_dev_credentials(elsewhere / FILE_NAME, other)

    refused = await dev_like.stanch("ack", incident, "--as", "alice", state=elsewhere)

    assert refused.returncode == 2 and "stanch login" in refused.stderr
    assert untouched(await dev_like.detail(incident)) == before


async def test_as_in_a_dev_stack_acts_with_that_persons_credential(dev_like: DevLike):
    incident = await dev_like.open_incident()

    acked = await dev_like.stanch("ack", incident, "--as", "alice", "--json")
    assert acked.returncode == 0, acked.stderr
    assert json.loads(acked.stdout)["status"] == "acknowledged"
    noted = await dev_like.stanch("note", incident, "failover started", "--as", "bob")
    assert noted.returncode == 0, noted.stderr
    role = await dev_like.stanch("role", incident, "incident-commander", "bob", "--as", "alice")
    assert role.returncode == 0, role.stderr

    detail = await dev_like.detail(incident)
    assert detail.view.state.acknowledged_by == "alice"
    actors = {e.kind: e.actor for e in detail.timeline}
    assert actors["acknowledged"] == "alice"
    assert actors["note"] == "bob"
    assert detail.view.state.roles == {"incident_commander": "bob"}

    before = untouched(detail)
    stranger = await dev_like.stanch("resolve", incident, "--as", "mallory")
    assert stranger.returncode == 2 and "not on the roster" in stranger.stderr
    assert untouched(await dev_like.detail(incident)) == before


async def test_a_made_up_token_is_refused_by_the_api(dev_like: DevLike):
    incident = await dev_like.open_incident()
    before = untouched(await dev_like.detail(incident))

    forged = await dev_like.stanch("resolve", incident, STANCH_API_TOKEN=secrets.token_urlsafe(32))

    assert forged.returncode == 2
    assert "401" in forged.stderr and "stanch login" in forged.stderr
    assert untouched(await dev_like.detail(incident)) == before


async def test_bad_input_is_refused_before_any_call(dev_like: DevLike):
    incident = await dev_like.open_incident()
    before = untouched(await dev_like.detail(incident))
    role = await dev_like.stanch("role", incident, "janitor", "bob", "--as", "alice")
    assert role.returncode == 2 and "role: 'janitor'" in role.stderr
    note = await dev_like.stanch("note", incident, "  ", "--as", "alice")
    assert note.returncode == 2 and "note: text is empty" in note.stderr
    unknown = await dev_like.stanch("ack", "0123456789abcdef0123", "--as", "alice")
    assert unknown.returncode == 2 and "no open incident" in unknown.stderr
    assert untouched(await dev_like.detail(incident)) == before


async def test_an_unreachable_gateway_exits_1(dev_like: DevLike):
    gone = await dev_like.stanch(
        "ack",
        "0123456789abcdef0123",
        STANCH_GATEWAY_URL=f"http://127.0.0.1:{free_port()}",
        STANCH_API_TOKEN=CAROL_APPROVER,
    )
    assert gone.returncode == 1 and "cannot reach the gateway" in gone.stderr


async def test_a_responder_credential_cannot_approve_a_reserved_step(dev_like: DevLike):
    """Carol may approve high risks on the roster, but this token of hers is
    scoped to responder: the approval is refused and the VM untouched. Bob's
    development credential (a responder) is refused too; Carol's approver
    credential then approves, and she asks for the release."""
    body = json.loads(VM_ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"vm-down-{uuid.uuid4().hex[:6]}"
    incident = await dev_like.open_incident(body)
    state = await dev_like.state_when(incident, lambda s: bool(s.pending_approvals))
    (pending,) = state.pending_approvals
    assert (pending.step, pending.risk) == ("isolate", "high")

    scoped = await dev_like.stanch("approve", incident, "isolate", STANCH_API_TOKEN=CAROL_RESPONDER)
    assert scoped.returncode == 2, scoped.stdout + scoped.stderr
    assert "refused" in scoped.stderr
    bob = await dev_like.stanch("approve", incident, "isolate", "--as", "bob")
    assert bob.returncode == 2, bob.stdout + bob.stderr
    state = (await dev_like.detail(incident)).view.state
    (pending,) = state.pending_approvals
    assert pending.approvals == [] and state.status == "triggered"

    approved = await dev_like.stanch(
        "approve", incident, "isolate", "--comment", "go", STANCH_API_TOKEN=CAROL_APPROVER
    )
    assert approved.returncode == 0, approved.stderr
    state = await dev_like.state_when(incident, lambda s: s.status == "contained", timeout=60)
    decided = [e for e in (await dev_like.detail(incident)).timeline if "approv" in e.kind]
    assert any("approved by carol" in e.summary for e in decided), decided

    released = await dev_like.stanch("release", incident, "--reason", "fixed", "--as", "carol")
    assert released.returncode == 0, released.stderr
    state = await dev_like.state_when(incident, lambda s: s.release is not None)
    assert state.release is not None


async def test_toggle_goes_through_the_admin_api(dev_like: DevLike):
    before = ToggleStore(dev_like.toggles).view()
    refused = await dev_like.stanch("toggle", "remediation", "off", "--as", "alice")
    assert refused.returncode == 2 and "403" in refused.stderr, refused.stderr
    assert ToggleStore(dev_like.toggles).view() == before
    typo = await dev_like.stanch("toggle", "remediation", "maybe", "--as", "dave")
    assert typo.returncode == 2 and "remediation: 'maybe'" in typo.stderr
    assert ToggleStore(dev_like.toggles).view() == before

    off = await dev_like.stanch(
        "toggle", "remediation", "off", "--runbook", "quarantine_vm", "--as", "dave",
        "--reason", "drill",
    )  # fmt: skip
    assert off.returncode == 0, off.stderr
    store = ToggleStore(dev_like.toggles)
    assert not store.allowed("quarantine_vm").allowed and store.allowed("restart_vm").allowed
    records = [r["record"] for r in SqliteAuditLog(dev_like.audit).records()]
    assert any(
        (r["actor"], r["action"], r["outcome"]) == ("dave", "toggle remediation", "off")
        for r in records
    ), records


def test_a_persons_api_role_follows_their_roster_roles():
    approvers = ["approver", "incident-lead"]
    assert api_role_for([], approvers) is ApiRole.RESPONDER
    assert api_role_for(["responder"], approvers) is ApiRole.RESPONDER
    assert api_role_for(["incident-lead"], approvers) is ApiRole.APPROVER
    assert api_role_for(["approver", "admin"], approvers) is ApiRole.ADMIN


def test_development_credentials_are_private_and_long(tmp_path: Path):
    config = load_config(policy_file(tmp_path))
    path = tmp_path / "state" / FILE_NAME
    write_dev_credentials(path, provision(config, "http://127.0.0.1:8080"))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    made = read_dev_credentials(path)
    assert [c.person for c in made.credentials] == [p.id for p in config.roster]
    assert all(len(c.token) >= 32 for c in made.credentials)
    assert len({c.token for c in made.credentials}) == len(made.credentials)


async def test_the_gateway_accepts_only_the_current_development_credentials(dev_like: DevLike):
    path = dev_like.state / FILE_NAME
    old = read_dev_credentials(path)
    alice = old.of("alice")
    assert alice is not None

    async def listing(token: str) -> int:
        async with httpx.AsyncClient() as http:
            answer = await http.get(
                f"{dev_like.url}/api/incidents", headers={"Authorization": f"Bearer {token}"}
            )
        return answer.status_code

    assert await listing(alice.token) == 200
    # A restarted stack makes new ones: the old are refused at once.
    renewed = old.model_copy(
        update={
            "credentials": [
                c.model_copy(update={"token": secrets.token_urlsafe(32)}) for c in old.credentials
            ]
        }
    )
    write_dev_credentials(path, renewed)
    assert await listing(alice.token) == 401
    new_alice = renewed.of("alice")
    assert new_alice is not None and await listing(new_alice.token) == 200
    # A damaged file grants nothing (it never falls back to what it held before).
    path.write_text('{"gateway_url": ')
    assert await listing(new_alice.token) == 401
