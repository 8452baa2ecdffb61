"""JSON Web Tokens from an identity provider (Entra ID or any OIDC issuer),
verified against the keys the issuer publishes (its JWKS).

Only asymmetric algorithms are accepted: with a symmetric one (HS256) or
`none`, anyone who can read the public keys could mint a token. Refusals say
which check failed and never repeat the token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Any

import httpx
import jwt

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
KEYS_FRESH_FOR = 3600.0  # seconds; issuers rotate keys over days, announcing new ones early
REFETCH_AT_MOST_EVERY = 60.0  # an unknown `kid` must not let callers hammer the issuer


class TokenRefused(Exception):
    """The token failed a check; `status` 401 (not a valid token for us) or
    403 (valid, but the caller lacks what the check requires)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message, self.status = message, status

    @property
    def error(self) -> str:
        return {403: "forbidden", 503: "unavailable"}.get(self.status, "unauthorized")


def looks_like_jwt(presented: str) -> bool:
    # header.payload.signature, the header being base64url of '{"...'
    return presented.count(".") == 2 and presented.startswith("eyJ")


class IssuerKeys:
    """The signing keys of one issuer, fetched from `jwks_uri` (or found through
    the issuer's OpenID discovery document) and refreshed when a token names a
    key we have not seen, e.g. after a rotation."""

    def __init__(self, jwks_uri: str | None = None, issuer: str | None = None) -> None:
        if jwks_uri is None and issuer is None:
            raise ValueError("IssuerKeys needs a jwks_uri or an issuer to discover it from")
        self._jwks_uri, self._issuer = jwks_uri, issuer
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        stale = time.monotonic() - self._fetched_at > KEYS_FRESH_FOR
        if kid not in self._keys or stale:
            async with self._lock:
                recently = time.monotonic() - self._fetched_at < REFETCH_AT_MOST_EVERY
                if not (recently and self._keys):
                    await self._refresh()
        found = self._keys.get(kid or "")
        if found is None and kid is None and len(self._keys) == 1:
            found = next(iter(self._keys.values()))
        if found is None:
            raise TokenRefused("signed with a key the issuer does not publish")
        return found

    async def _refresh(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                uri = self._jwks_uri or await self._discover(http)
                answer = await http.get(uri)
                answer.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(answer.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as e:
            if self._keys:
                return  # keep the keys we have; the issuer may be briefly away
            raise TokenRefused(f"issuer keys unavailable ({type(e).__name__})", 503) from None
        self._keys = {k.key_id or "": k for k in keys.keys}
        self._fetched_at = time.monotonic()

    async def _discover(self, http: httpx.AsyncClient) -> str:
        assert self._issuer is not None
        self._jwks_uri = (await discovery_document(http, self._issuer, "jwks_uri"))["jwks_uri"]
        return self._jwks_uri


async def discovery_document(http: httpx.AsyncClient, issuer: str, *needed: str) -> dict[str, str]:
    """The issuer's OpenID configuration, with the endpoints `needed` present."""
    answer = await http.get(issuer.rstrip("/") + "/.well-known/openid-configuration")
    answer.raise_for_status()
    document = answer.json()
    missing = [k for k in needed if not isinstance(document.get(k), str)]
    if missing:
        raise ValueError(f"discovery document lacks {', '.join(missing)}")
    return {k: v for k, v in document.items() if isinstance(v, str)}


async def verify_jwt(
    token: str,
    keys: IssuerKeys,
    *,
    issuers: Collection[str],
    audiences: Collection[str],
    leeway: float = 60.0,
) -> dict[str, Any]:
    """The token's claims once signature, expiry, issuer and audience hold."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused("not a well-formed JWT") from None
    algorithm = header.get("alg")
    if algorithm not in ASYMMETRIC:
        raise TokenRefused(f"algorithm {algorithm!r} is not accepted")
    key = await keys.key(header.get("kid"))
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=list(audiences),
            issuer=list(issuers),
            leeway=leeway,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRefused("token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRefused("token not valid yet (nbf/iat in the future)") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused("token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused("token is from an issuer this gateway does not trust") from None
    except jwt.InvalidSignatureError:
        raise TokenRefused("signature does not verify") from None
    except jwt.MissingRequiredClaimError as e:
        raise TokenRefused(f"token lacks the {e.claim!r} claim") from None
    except jwt.PyJWTError as e:
        raise TokenRefused(f"token invalid ({type(e).__name__})") from None
    return claims
