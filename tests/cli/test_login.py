"""`stanch login`: the OAuth 2.0 device authorization grant (RFC 8628)
against a real identity provider on loopback, end to end: the CLI shows a
code, the person enters it at the verification page, the CLI polls as slowly
as it is told, caches the sign-in privately, acts through the on-call API as
that person, and renews the sign-in with its refresh token once it expires."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from stanch.cli.credentials import SignIns
from stanch.client.incidents import fetch_incident
from stanch.harness.ports import free_port
from tests.support.alerts import unique_alert
from tests.support.identity_provider import IdentityProvider
from tests.support.plans import policy_file
from tests.support.stack import gateway_at, stack_settings

APP = "api://stanch-gateway"
CLIENT = "5e6b1f0c-0000-4000-8000-00000000c11e"  # the CLI's public client
ALICE_OID = "0f0e0d0c-1111-4222-8333-a11cea11cea1"
ALICE = {"oid": ALICE_OID, "preferred_username": "alice@contoso.example"}
CODE_LINE = re.compile(r"open (\S+) and enter the code (\S+)")


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider() as provider:
        provider.user = {**ALICE, "roles": ["Stanch.Responder"]}
        yield provider


@dataclass
class Terminal:
    """A person's shell: the gateway's URL and the policy file in its
    environment, a config home of its own, no other stanch setting."""

    home: Path
    env: dict[str, str]
    cwd: Path

    @property
    def cache(self) -> Path:
        return self.home / "stanch" / "credentials.json"

    def sign_ins(self) -> SignIns:
        return SignIns.model_validate_json(self.cache.read_text())

    async def stanch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stanch.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=60,
        )

    async def login(self, idp: IdentityProvider, approve_after_polls: int = 1) -> str:
        """Runs `stanch login`, enters the code it shows at the verification
        page once the CLI has polled `approve_after_polls` times, and returns
        what it printed."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stanch.cli.main",
            "login",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
        )
        assert process.stdout is not None and process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        shown = CODE_LINE.search(line)
        assert shown, line + (await process.stderr.read()).decode()
        verification_uri, user_code = shown.groups()
        deadline = time.monotonic() + 60
        while len(idp.polls) < approve_after_polls:
            assert time.monotonic() < deadline, "the CLI never polled"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as http:  # the person's browser
            entered = await http.get(verification_uri, params={"user_code": user_code})
            assert entered.status_code == 200
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return line + out.decode()


async def past(moment: float) -> None:
    """Until the wall clock, which decides a token's expiry, is past `moment`."""
    while time.time() <= moment:  # noqa: ASYNC110 - nothing to wait on but the clock
        await asyncio.sleep(0.1)


def terminal(tmp_path: Path, config: Path, gateway_url: str) -> Terminal:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    home = tmp_path / "home-config"
    cwd = tmp_path / "cwd"  # no `.stanch/env` of a dev stack here
    cwd.mkdir()
    env.update(XDG_CONFIG_HOME=str(home), STANCH_GATEWAY_URL=gateway_url, STANCH_CONFIG=str(config))
    return Terminal(home=home, env=env, cwd=cwd)


def oidc_policy(tmp_path: Path, idp: IdentityProvider) -> Path:
    oidc = {
        "issuer": idp.issuer,
        "audience": APP,
        "client_id": CLIENT,
        "roles": {"Stanch.Responder": "responder"},
    }
    roster = [
        {"id": "alice", "oidc_subject": ALICE_OID},
        {"id": "bob"},
        {"id": "carol", "roles": ["approver"]},
    ]
    return policy_file(tmp_path, roster=roster, access={"oidc": oidc})


@dataclass
class SignedInStack:
    client: Client
    url: str
    alert_token: str
    terminal: Terminal

    async def open_incident(self) -> str:
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{self.url}/alerts", json=unique_alert(), params={"token": self.alert_token}
            )
        assert answer.status_code == 202, answer.text
        incident: str = answer.json()["incident_id"]
        return incident


@pytest.fixture
async def signed_in_stack(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, idp: IdentityProvider
) -> AsyncIterator[SignedInStack]:
    from stanch.worker import build_worker

    config = oidc_policy(tmp_path, idp)
    port = free_port()
    alert_token = secrets.token_urlsafe(24)
    settings = stack_settings(dev_env, tmp_path, task_queue, config, alert_token, port)
    async with build_worker(dev_env.client, settings), gateway_at(settings, port) as url:
        yield SignedInStack(dev_env.client, url, alert_token, terminal(tmp_path, config, url))


async def test_device_flow_end_to_end(signed_in_stack: SignedInStack, idp: IdentityProvider):
    stack, you = signed_in_stack, signed_in_stack.terminal
    incident = await stack.open_incident()

    printed = await you.login(idp, approve_after_polls=1)

    assert "signed in" in printed
    # Polled no faster than the provider's interval, so never told to slow down.
    answers = [answer for _, answer in idp.polls]
    assert answers == ["authorization_pending", "issued"], answers
    assert idp.polls[1][0] - idp.polls[0][0] >= idp.device_interval - 0.05
    # The cache: private from the first byte, keyed by this gateway.
    assert oct(you.cache.stat().st_mode & 0o777) == "0o600"
    assert oct(you.cache.parent.stat().st_mode & 0o777) == "0o700"
    sign_in = you.sign_ins().by_gateway[stack.url]
    assert sign_in.issuer == idp.issuer and sign_in.refresh_token

    acked = await you.stanch("ack", incident, "--note", "on it")
    assert acked.returncode == 0, acked.stderr
    detail = await fetch_incident(stack.client, incident)
    assert detail.view.state.acknowledged_by == "alice"
    assert any(e.kind == "acknowledged" and e.actor == "alice" for e in detail.timeline)

    out = await you.stanch("logout")
    assert out.returncode == 0 and "signed out" in out.stdout
    assert not you.cache.exists()
    after = await you.stanch("resolve", incident)
    assert after.returncode == 2 and "stanch login" in after.stderr
    assert (await fetch_incident(stack.client, incident)).view.state.resolved_by is None


async def test_an_expired_sign_in_is_renewed_with_its_refresh_token(
    signed_in_stack: SignedInStack, idp: IdentityProvider
):
    stack, you = signed_in_stack, signed_in_stack.terminal
    incident = await stack.open_incident()
    idp.lifetime = 2  # seconds
    await you.login(idp)
    first = you.sign_ins().by_gateway[stack.url]
    expires = jwt.decode(first.token, options={"verify_signature": False})["exp"]
    await past(expires)  # the sign-in expires, as it would over lunch

    acked = await you.stanch("ack", incident)

    assert acked.returncode == 0, acked.stderr
    assert idp.refreshes == 1
    renewed = you.sign_ins().by_gateway[stack.url]
    assert renewed.token != first.token and renewed.refresh_token != first.refresh_token
    assert oct(you.cache.stat().st_mode & 0o777) == "0o600"
    assert (await fetch_incident(stack.client, incident)).view.state.acknowledged_by == "alice"

    # The provider revokes the refresh token: told to sign in again, nothing changes.
    idp.refresh_tokens.clear()
    await past(renewed.expires_at.timestamp())
    refused = await you.stanch("resolve", incident)
    assert refused.returncode == 2 and "stanch login" in refused.stderr
    assert (await fetch_incident(stack.client, incident)).view.state.resolved_by is None


async def test_login_slows_down_when_told(tmp_path: Path, idp: IdentityProvider):
    """RFC 8628 3.5: after `slow_down` the interval grows by 5 s for good."""
    you = terminal(tmp_path, oidc_policy(tmp_path, idp), "http://127.0.0.1:8080")
    idp.slow_down_next = 1

    await you.login(idp, approve_after_polls=1)

    answers = [answer for _, answer in idp.polls]
    assert answers == ["slow_down", "issued"], answers
    assert idp.polls[1][0] - idp.polls[0][0] >= idp.device_interval + 5 - 0.05


async def test_login_without_an_issuer_names_what_is_missing(tmp_path: Path):
    config = policy_file(tmp_path)  # no access.oidc
    you = terminal(tmp_path, config, "http://127.0.0.1:8080")
    out = await you.stanch("login")
    assert out.returncode == 2
    assert "STANCH_LOGIN_ISSUER" in out.stderr and "access.oidc.issuer" in out.stderr
    assert not you.cache.exists()
