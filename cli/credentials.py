"""The credential people's commands present to the on-call API, which names
the person from it: nobody is who they say, only who they can prove to be.

In order:
1. `--as PERSON`, only against a stack started by `stanch dev`: that
   person's development credential from `<state-dir>/credentials.json`.
   Anywhere else `--as` is refused.
2. STANCH_API_TOKEN: a token from the policy's `access.tokens`.
3. `stanch login`'s sign-in for this gateway, cached in
   `$XDG_CONFIG_HOME/stanch/credentials.json` (or ~/.config/stanch/...), file
   0600 and folder 0700, and refreshed with its refresh token once it expires.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from pydantic import BaseModel, Field, ValidationError

from stanch.cli.errors import Unavailable, UsageError
from stanch.models.dev_credentials import FILE_NAME, DevCredentialsUnusable, read_dev_credentials
from stanch.models.private_file import write_private
from stanch.models.settings import Settings

# Refresh a little before the token expires, so it does not expire in flight.
REFRESH_MARGIN = timedelta(seconds=60)
IDP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def credential_for(settings: Settings, state_dir: Path, as_person: str | None) -> str:
    if as_person is not None:
        return dev_credential(settings, state_dir, as_person)
    if settings.api_token is not None and settings.api_token.get_secret_value():
        return settings.api_token.get_secret_value()
    signed_in = signed_in_token(settings.gateway_url)
    if signed_in is not None:
        return signed_in
    raise UsageError(
        f"no credential for {settings.gateway_url}: set STANCH_API_TOKEN, or run `stanch login`"
    )


def dev_credential(settings: Settings, state_dir: Path, person: str) -> str:
    path = state_dir / FILE_NAME
    outside = (
        f"--as {person}: only a stack started by `stanch dev` has development credentials, "
        f"and there is none in {state_dir} for {settings.gateway_url}; "
        "elsewhere your credential says who you are: set STANCH_API_TOKEN, or run `stanch login`"
    )
    if not (state_dir / "env").is_file():
        raise UsageError(outside)
    try:
        credentials = read_dev_credentials(path)
    except DevCredentialsUnusable:
        raise UsageError(outside) from None
    if credentials.gateway_url.rstrip("/") != settings.gateway_url.rstrip("/"):
        raise UsageError(outside)
    found = credentials.of(person)
    if found is None:
        raise UsageError(
            f"--as {person}: not on the roster of this dev stack, so no development "
            f"credential (the people in {path}: "
            f"{', '.join(c.person for c in credentials.credentials)})"
        )
    return found.token


# --- `stanch login`'s cache -------------------------------------------------


class SignIn(BaseModel):
    """One sign-in with the identity provider, for one gateway."""

    issuer: str
    client_id: str
    token_endpoint: str
    # What the CLI presents: the ID token (issued for our client id, which the
    # gateway accepts as an audience, as it does for dashboard sign-in), or the
    # access token when the provider sent no ID token.
    token: str
    refresh_token: str | None = None
    expires_at: datetime
    scope: str = ""


class SignIns(BaseModel):
    by_gateway: dict[str, SignIn] = Field(default_factory=dict)


def config_dir() -> Path:
    configured = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(configured) if os.path.isabs(configured) else Path.home() / ".config"
    return base / "stanch"


def cache_path() -> Path:
    return config_dir() / "credentials.json"


def _key(gateway_url: str) -> str:
    return gateway_url.rstrip("/")


def load_sign_ins() -> SignIns:
    path = cache_path()
    try:
        return SignIns.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        return SignIns()
    except (OSError, ValueError, ValidationError):
        raise UsageError(
            f"{path}: unreadable sign-in cache; run `stanch logout` and `stanch login`"
        ) from None


def save_sign_in(gateway_url: str, sign_in: SignIn) -> Path:
    sign_ins = load_sign_ins()
    sign_ins.by_gateway[_key(gateway_url)] = sign_in
    _store(sign_ins)
    return cache_path()


def forget_sign_in(gateway_url: str) -> bool:
    """`stanch logout`: the sign-in for this gateway is gone; so is the file
    once it holds none."""
    path = cache_path()
    if not path.exists():
        return False
    sign_ins = load_sign_ins()
    removed = sign_ins.by_gateway.pop(_key(gateway_url), None) is not None
    if sign_ins.by_gateway:
        _store(sign_ins)
    else:
        path.unlink(missing_ok=True)
    return removed


def _store(sign_ins: SignIns) -> None:
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)  # ours alone, even if an older stanch made it wider
    write_private(cache_path(), sign_ins.model_dump_json(indent=2) + "\n")


def sign_in_from(
    answer: dict[str, Any],
    issuer: str,
    client_id: str,
    token_endpoint: str,
    earlier: SignIn | None = None,
) -> SignIn:
    """A token endpoint's answer (device grant or refresh) as a cached sign-in.
    A refresh that sends no new refresh token keeps the old one (RFC 6749 6)."""
    token = answer.get("id_token") or answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise UsageError(f"{issuer}: the token endpoint sent no token")
    refresh = answer.get("refresh_token") or (earlier.refresh_token if earlier else None)
    return SignIn(
        issuer=issuer,
        client_id=client_id,
        token_endpoint=token_endpoint,
        token=token,
        refresh_token=refresh if isinstance(refresh, str) else None,
        expires_at=_expiry(token, answer.get("expires_in")),
        scope=str(answer.get("scope") or (earlier.scope if earlier else "")),
    )


def _expiry(token: str, expires_in: Any) -> datetime:
    """When the presented token stops being accepted: its own `exp` when it
    is a JWT (read, not verified: the gateway verifies it), else `expires_in`."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        if isinstance(exp, int | float):
            return datetime.fromtimestamp(exp, UTC)
    except jwt.PyJWTError:
        pass
    seconds = expires_in if isinstance(expires_in, int | float) else 3600
    return datetime.now(UTC) + timedelta(seconds=seconds)


def signed_in_token(gateway_url: str) -> str | None:
    sign_in = load_sign_ins().by_gateway.get(_key(gateway_url))
    if sign_in is None:
        return None
    if sign_in.expires_at - datetime.now(UTC) > REFRESH_MARGIN:
        return sign_in.token
    if not sign_in.refresh_token:
        raise UsageError(f"your sign-in to {gateway_url} has expired: run `stanch login`")
    renewed = refresh(sign_in)
    save_sign_in(gateway_url, renewed)
    return renewed.token


def refresh(sign_in: SignIn) -> SignIn:
    assert sign_in.refresh_token is not None
    form = {
        "grant_type": "refresh_token",
        "refresh_token": sign_in.refresh_token,
        "client_id": sign_in.client_id,
    }
    if sign_in.scope:
        form["scope"] = sign_in.scope
    try:
        answer = httpx.post(sign_in.token_endpoint, data=form, timeout=IDP_TIMEOUT)
    except httpx.TransportError as e:
        raise Unavailable(f"cannot reach the identity provider {sign_in.issuer}: {e}") from None
    body = json_object(answer)
    if answer.status_code != 200:
        raise UsageError(
            f"your sign-in could not be renewed ({body.get('error', answer.status_code)}): "
            "run `stanch login`"
        )
    return sign_in_from(body, sign_in.issuer, sign_in.client_id, sign_in.token_endpoint, sign_in)


def json_object(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
