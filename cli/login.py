"""`stanch login`: sign in from a terminal with the OAuth 2.0 device
authorization grant (RFC 8628) against the policy's OIDC issuer, so that
people's commands carry a credential the gateway verifies like any sign-in.

The terminal shows a code and a URL; the person opens it on any device,
signs in there, and the CLI, polling the token endpoint as slowly as the
provider asks, receives the tokens and caches them (cli/credentials.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from stanch.cli.credentials import (
    IDP_TIMEOUT,
    SignIn,
    forget_sign_in,
    json_object,
    save_sign_in,
    sign_in_from,
)
from stanch.cli.errors import Unavailable, UsageError
from stanch.gateway.identity import discovery_document
from stanch.models.config import ConfigError
from stanch.models.settings import Settings
from stanch.stores.policy import load_config

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5  # seconds, when the provider names none (RFC 8628 3.2)
SLOW_DOWN_STEP = 5  # seconds added at each `slow_down` (RFC 8628 3.5)
DEFAULT_SCOPES = ["openid", "profile", "email"]


@dataclass
class LoginTarget:
    issuer: str
    client_id: str
    scopes: list[str]


def login_target(settings: Settings, issuer: str | None, client_id: str | None) -> LoginTarget:
    """Flags first, then STANCH_LOGIN_ISSUER / STANCH_LOGIN_CLIENT_ID, then the
    policy's `access.oidc` (issuer and client_id) when the file is at hand."""
    oidc = None
    try:
        oidc = load_config(settings.config).access.oidc if settings.config.is_file() else None
    except ConfigError:
        pass  # the flags or settings may still say everything needed
    issuer = issuer or settings.login_issuer or (oidc.issuer if oidc else None)
    client_id = client_id or settings.login_client_id or (oidc.client_id if oidc else None)
    if not issuer:
        raise UsageError(
            "login: no OIDC issuer (--issuer, STANCH_LOGIN_ISSUER, or access.oidc.issuer "
            f"in {settings.config})"
        )
    if not client_id:
        raise UsageError(
            "login: no client id (--client-id, STANCH_LOGIN_CLIENT_ID, or "
            f"access.oidc.client_id in {settings.config})"
        )
    scopes = list(oidc.scopes) if oidc else list(DEFAULT_SCOPES)
    if "offline_access" not in scopes:
        scopes.append("offline_access")  # a refresh token, so the sign-in outlives an hour
    return LoginTarget(issuer=issuer, client_id=client_id, scopes=scopes)


def run_login(settings: Settings, issuer: str | None, client_id: str | None) -> int:
    target = login_target(settings, issuer, client_id)
    sign_in = asyncio.run(device_flow(target))
    path = save_sign_in(settings.gateway_url, sign_in)
    print(f"signed in for {settings.gateway_url}; credential cached in {path}")
    return 0


def run_logout(settings: Settings) -> int:
    if forget_sign_in(settings.gateway_url):
        print(f"signed out of {settings.gateway_url}")
    else:
        print(f"not signed in for {settings.gateway_url}")
    return 0


async def device_flow(target: LoginTarget) -> SignIn:
    async with httpx.AsyncClient(timeout=IDP_TIMEOUT) as http:
        try:
            endpoints = await discovery_document(
                http, target.issuer, "device_authorization_endpoint", "token_endpoint"
            )
        except httpx.TransportError as e:
            raise Unavailable(f"cannot reach the identity provider {target.issuer}: {e}") from None
        except (httpx.HTTPStatusError, ValueError) as e:
            raise UsageError(
                f"{target.issuer} does not offer the device authorization grant: {e}"
            ) from None
        scope = " ".join(target.scopes)
        device = await _post(
            http,
            endpoints["device_authorization_endpoint"],
            {"client_id": target.client_id, "scope": scope},
        )
        if device.status_code != 200:
            raise UsageError(f"login: device authorization refused: {_error(device)}")
        grant = json_object(device)
        for field in ("device_code", "user_code", "verification_uri"):
            if not isinstance(grant.get(field), str):
                raise UsageError(f"login: the identity provider's answer lacks {field}")
        print(
            f"To sign in, open {grant['verification_uri']} and enter the code {grant['user_code']}",
            flush=True,
        )
        if isinstance(grant.get("verification_uri_complete"), str):
            print(f"(or open {grant['verification_uri_complete']})", flush=True)
        answer = await _poll(http, endpoints["token_endpoint"], target, grant)
        return sign_in_from(answer, target.issuer, target.client_id, endpoints["token_endpoint"])


async def _poll(
    http: httpx.AsyncClient, token_endpoint: str, target: LoginTarget, grant: dict[str, Any]
) -> dict[str, Any]:
    """Ask for the tokens until the person has signed in, never faster than
    `interval`, slowing down when told to, until the code expires."""
    interval = _seconds(grant.get("interval"), DEFAULT_INTERVAL)
    deadline = time.monotonic() + _seconds(grant.get("expires_in"), 900)
    form = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"]}
    form["client_id"] = target.client_id
    while True:
        await asyncio.sleep(interval)
        if time.monotonic() > deadline:
            raise UsageError("login: the code expired before sign-in finished; run it again")
        answer = await _post(http, token_endpoint, form)
        if answer.status_code == 200:
            return json_object(answer)
        error = json_object(answer).get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if error == "access_denied":
            raise UsageError("login: sign-in was declined")
        if error == "expired_token":
            raise UsageError("login: the code expired before sign-in finished; run it again")
        raise UsageError(f"login: refused by the identity provider: {_error(answer)}")


async def _post(http: httpx.AsyncClient, url: str, form: dict[str, str]) -> httpx.Response:
    try:
        return await http.post(url, data=form)
    except httpx.TransportError as e:
        raise Unavailable(f"cannot reach the identity provider at {url}: {e}") from None


def _error(answer: httpx.Response) -> str:
    body = json_object(answer)
    error = body.get("error") or answer.status_code
    description = body.get("error_description")
    return f"{error}: {str(description)[:200]}" if description else str(error)


def _seconds(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default
