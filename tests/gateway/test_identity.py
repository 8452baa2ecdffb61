"""Tokens from an identity provider, over real HTTP: Azure Monitor secure
webhooks on the intake (Entra ID), and people signing in to the on-call API
with OIDC JWTs. Every refusal names the check that failed, never repeats the
token, and starts nothing."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from stanch.client.ids import workflow_id_for
from stanch.gateway.secure_webhook import ACTION_GROUPS_APP_ID, WEBHOOK_ROLE
from stanch.harness.ports import free_port
from tests.support.alerts import unique_alert
from tests.support.identity_provider import TENANT, IdentityProvider
from tests.support.plans import policy_file
from tests.support.stack import gateway_at

APP = "api://stanch-gateway"
CLIENT = "5e6b1f0c-0000-4000-8000-00000000da5b"  # the dashboard's app registration
ROLES = {"Stanch.Viewer": "viewer", "Stanch.Responder": "responder"}
# Entra object ids: what people are matched by (their names can change hands).
OID = {
    "alice": "1c0a7d3e-5b2f-4e8a-9d61-3f0b2c4e6a81",
    "bob": "2d1b8e4f-6c3a-4f9b-8e72-4a1c3d5f7b92",
    "carol": "3e2c9f5a-7d4b-4a0c-9f83-5b2d4e6a8ca3",
}


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider() as provider:
        yield provider


@pytest.fixture
async def gateway(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, idp: IdentityProvider
) -> AsyncIterator[str]:
    """The gateway alone: what these tests check happens before any worker."""
    from stanch.models.settings import Settings

    oidc = {"issuer": idp.issuer, "audience": APP, "roles": ROLES, "client_id": CLIENT}
    roster = [
        {"id": "alice", "email": "Alice@contoso.example", "oidc_subject": OID["alice"]},
        {"id": "bob", "oidc_subject": OID["bob"]},
        {"id": "carol", "roles": ["approver"], "oidc_subject": OID["carol"]},
        {"id": "dave", "email": "dave@contoso.example"},  # no subject: cannot sign in
    ]
    port = free_port()
    settings = Settings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=task_queue,
        config=policy_file(tmp_path, roster=roster, access={"oidc": oidc}),
        alert_token=SecretStr(secrets.token_urlsafe(16)),
        entra_tenant_id=TENANT,
        entra_audience=f"{APP}, 0a1b2c3d-0000-0000-0000-00000000beef",
        entra_authority=idp.authority,
        state_dir=tmp_path,
        gateway_url=f"http://127.0.0.1:{port}",
    )
    async with gateway_at(settings, port) as url:
        yield url


def webhook_claims(**overrides: Any) -> dict[str, Any]:
    """What an action group's token carries (v2.0), per the secure webhook setup."""
    claims = {"aud": APP, "azp": ACTION_GROUPS_APP_ID, "roles": [WEBHOOK_ROLE]}
    claims.update(overrides)
    return claims


async def exists(client: Any, incident_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id_for(incident_id)).describe()
    except RPCError as e:
        assert e.status is RPCStatusCode.NOT_FOUND
        return False
    return True


async def test_secure_webhook_accepts_action_group_tokens_only(
    gateway: str, idp: IdentityProvider, dev_env: WorkflowEnvironment
):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "expired": (idp.token(**webhook_claims(exp=1_000_000)), 401, "expired"),
        "other audience": (idp.token(**webhook_claims(aud="api://other")), 401, "audience"),
        "other issuer": (
            idp.token(**webhook_claims(iss="https://sts.windows.net/another-tenant/")),
            401,
            "issuer",
        ),
        "other tenant": (idp.token(**webhook_claims(tid="another-tenant")), 401, "tenant"),
        "forged": (idp.token(key=other_key, **webhook_claims()), 401, "signature"),
        "unknown key": (idp.token(kid="rotated-away", **webhook_claims()), 401, "key"),
        "not action groups": (
            idp.token(**webhook_claims(azp=str(uuid.uuid4()))),
            403,
            "action groups",
        ),
        "no app role": (idp.token(**webhook_claims(roles=["Other"])), 403, WEBHOOK_ROLE),
    }
    async with httpx.AsyncClient(timeout=30) as http:
        for name, (token, status, says) in refused.items():
            body = unique_alert()
            answer = await http.post(
                f"{gateway}/alerts", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == status, (name, answer.text)
            assert says in answer.json()["message"], (name, answer.text)
            assert token not in answer.text
            incident = _fingerprint(body)
            assert not await exists(dev_env.client, incident), f"{name} started an incident"

        # v2.0 token for our app id (not the URI): the action group's real shape.
        good = idp.token(**webhook_claims(aud="0a1b2c3d-0000-0000-0000-00000000beef"))
        accepted = await http.post(
            f"{gateway}/alerts", json=unique_alert(), headers={"Authorization": f"Bearer {good}"}
        )
        assert accepted.status_code == 202, accepted.text
        incident = accepted.json()["incident_id"]
        assert await exists(dev_env.client, incident)
        await dev_env.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
        # v1.0 tokens name the caller `appid` and are issued by sts.windows.net.
        v1 = idp.token(
            **webhook_claims(iss=f"https://sts.windows.net/{TENANT}/", azp=None),
            appid=ACTION_GROUPS_APP_ID,
        )
        accepted = await http.post(
            f"{gateway}/alerts", json=unique_alert(), headers={"Authorization": f"Bearer {v1}"}
        )
        assert accepted.status_code == 202, accepted.text
        incident = accepted.json()["incident_id"]
        await dev_env.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
    assert idp.key_fetches <= 3, "keys are cached, refreshed only for an unknown kid"


async def test_people_sign_in_with_oidc_tokens(gateway: str, idp: IdentityProvider):
    def bearer(**claims: Any) -> dict[str, str]:
        token = idp.token(aud=APP, **claims)
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(timeout=30) as http:
        # By the immutable object id; the user name is only shown.
        alice = bearer(
            oid=OID["alice"], preferred_username="alice@CONTOSO.example", roles=["Stanch.Responder"]
        )
        listing = await http.get(f"{gateway}/api/incidents", headers=alice)
        assert listing.status_code == 200, listing.text
        # A responder reaches the workflow (404: no such incident) ...
        ack = await http.post(f"{gateway}/api/incidents/feedbeef/ack", json={}, headers=alice)
        assert ack.status_code == 404, ack.text
        # ... a viewer is stopped before it.
        bob = bearer(oid=OID["bob"], preferred_username="bob", roles=["Stanch.Viewer", "Unrelated"])
        ack = await http.post(f"{gateway}/api/incidents/feedbeef/ack", json={}, headers=bob)
        assert ack.status_code == 403 and "bob is a viewer" in ack.json()["message"]

        cases = {
            "not on roster": (bearer(preferred_username="mallory", roles=["Stanch.Viewer"]), 403),
            "no stanch role": (bearer(oid=OID["carol"], roles=["Other"]), 403),
            "other audience": (
                {"Authorization": f"Bearer {idp.token(aud='api://x', preferred_username='bob')}"},
                401,
            ),
            "expired": (bearer(oid=OID["bob"], roles=["Stanch.Viewer"], exp=1), 401),
        }
        for name, (headers, status) in cases.items():
            answer = await http.get(f"{gateway}/api/incidents", headers=headers)
            assert answer.status_code == status, (name, answer.text)
            assert headers["Authorization"][7:] not in answer.text


async def test_a_name_or_email_claim_never_makes_anyone_someone_else(
    gateway: str, idp: IdentityProvider, tmp_path: Path
):
    """Review #19: a token whose preferred_username was `DAVE@Example.COM` was
    accepted as dave. Names and emails change hands (and are case-folded); the
    object id never does, so it alone says who signed in."""

    async def call(method: str, path: str, **claims: Any) -> httpx.Response:
        token = idp.token(aud=APP, **claims)
        headers = {"Authorization": f"Bearer {token}"}
        return await http.request(method, f"{gateway}{path}", json={}, headers=headers)

    responder = ["Stanch.Responder"]
    async with httpx.AsyncClient(timeout=30) as http:
        # alice's user name and email, someone else's object id: not alice.
        for names in (
            {"preferred_username": "ALICE@contoso.example"},
            {"preferred_username": "alice", "email": "alice@contoso.example"},
        ):
            impostor = await call(
                "GET", "/api/incidents", oid=str(uuid.uuid4()), roles=responder, **names
            )
            assert impostor.status_code == 403, impostor.text
            assert "not on the roster" in impostor.json()["message"]
            bare = await call("GET", "/api/incidents", roles=responder, **names)  # no oid
            assert bare.status_code == 403, bare.text
        # bob's object id under alice's name is bob, with bob's role.
        as_bob = await call(
            "POST",
            "/api/incidents/feedbeef/ack",
            oid=OID["bob"],
            preferred_username="alice@contoso.example",
            roles=["Stanch.Viewer"],
        )
        assert as_bob.status_code == 403 and "bob is a viewer" in as_bob.json()["message"]
        # dave has no subject: without the opt-in, no name signs him in.
        dave = {"preferred_username": "DAVE@contoso.example", "roles": responder}
        assert (await call("GET", "/api/incidents", **dave)).status_code == 403

        # The explicit opt-in matches names, but only of people without a subject.
        config = tmp_path / "stanch.yaml"
        policy = yaml.safe_load(config.read_text())
        policy["access"]["oidc"]["trust_mutable_names"] = True
        config.write_text(yaml.safe_dump(policy))
        assert (await call("GET", "/api/incidents", **dave)).status_code == 200
        impostor = await call(
            "GET",
            "/api/incidents",
            oid=str(uuid.uuid4()),
            preferred_username="alice",
            roles=responder,
        )
        assert impostor.status_code == 403, "a person with a subject is never matched by name"


def _fingerprint(body: dict[str, Any]) -> str:
    from stanch.models.alert import CommonAlert

    return CommonAlert.model_validate(body).fingerprint()


async def test_dashboard_single_sign_on_with_pkce(gateway: str, idp: IdentityProvider):
    async def sign_in(http: httpx.AsyncClient, tamper: Any = None) -> httpx.Response:
        started = await http.get("/login/sso")
        assert started.status_code == 303, started.text
        authorize = started.headers["location"]
        asked = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
        assert asked["code_challenge_method"] == "S256" and asked["client_id"] == CLIENT
        assert asked["redirect_uri"] == f"{gateway}/login/callback"
        flow = started.headers["set-cookie"].lower()
        assert "httponly" in flow and "samesite=lax" in flow and "path=/login" in flow
        if tamper:
            tamper(http)
        back = await http.get(authorize)  # the provider signs the person in
        assert back.status_code == 302
        return await http.get(back.headers["location"])

    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        assert "id='sso'" in (await http.get("/login")).text
        idp.user = {
            "oid": OID["alice"],
            "preferred_username": "alice@contoso.example",
            "roles": ["Stanch.Responder"],
        }
        done = await sign_in(http)
        assert done.status_code == 200 and "url=/" in done.text
        assert "stanch_token" in http.cookies
        home = await http.get("/")
        assert home.status_code == 200 and "alice" in home.text
        # The session is the ID token: the API takes it too, with alice's role.
        ack = await http.post("/api/incidents/feedbeef/ack", json={})
        assert ack.status_code == 404, ack.text

    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        idp.user = {"preferred_username": "mallory", "roles": ["Stanch.Admin"]}
        stranger = await sign_in(http)
        assert stranger.status_code == 403 and "not on the roster" in stranger.text
        assert "stanch_token" not in http.cookies

        idp.user = {"oid": OID["bob"], "preferred_username": "bob", "roles": ["Stanch.Viewer"]}

        def other_verifier(client: httpx.AsyncClient) -> None:
            # Someone holding the code but not this browser's PKCE verifier.
            flow = json.loads(base64.urlsafe_b64decode(client.cookies["stanch_sso"]))
            flow["verifier"] = "x" * 64
            forged = base64.urlsafe_b64encode(json.dumps(flow).encode()).decode()
            client.cookies.set("stanch_sso", forged, path="/login")

        intercepted = await sign_in(http, other_verifier)
        assert intercepted.status_code == 401 and "no ID token" in intercepted.text
        assert "stanch_token" not in http.cookies

        # A callback this browser did not start (login CSRF) is refused.
        planted = await http.get("/login/callback", params={"code": "c", "state": "theirs"})
        assert planted.status_code == 400 and "not started here" in planted.text
