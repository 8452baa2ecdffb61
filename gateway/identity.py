"""JSON Web Tokens from an identity provider (Entra ID or any OIDC issuer),
verified against the keys the issuer publishes (its JWKS).

Only asymmetric algorithms are accepted: with a symmetric one (HS256) or
`none`, anyone who can read the public keys could mint a token. Refusals say
which check failed and never repeat the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Collection
from typing import Any

import httpx
import jwt

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
KEYS_FRESH_FOR = 3600.0  # seconds; issuers rotate keys over days, announcing new ones early
# At most one fetch a minute, whatever happens: an unknown `kid` must not let
# callers hammer the issuer, and an issuer that is down is not asked again at
# once (each try would hold requests up).
REFETCH_AT_MOST_EVERY = 60.0
FETCH_SECONDS = 2.0  # the longest any request waits for the issuer's keys
log = logging.getLogger("stanch.gateway.identity")


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
    key we have not seen, e.g. after a rotation.

    One fetch at a time (single flight), at most one a minute, and none longer
    than FETCH_SECONDS. When the keys are merely old, a token signed with a
    key we hold is served at once and the refresh runs in the background: an
    identity provider that is away must not stall the gateway."""

    def __init__(self, jwks_uri: str | None = None, issuer: str | None = None) -> None:
        if jwks_uri is None and issuer is None:
            raise ValueError("IssuerKeys needs a jwks_uri or an issuer to discover it from")
        self._jwks_uri, self._issuer = jwks_uri, issuer
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf  # the last fetch that worked
        self._tried_at = -math.inf  # the last fetch started, whatever came of it
        self._refreshing: asyncio.Task[None] | None = None

    async def key(self, kid: str | None) -> jwt.PyJWK:
        found = self._held(kid)
        if found is not None:
            if time.monotonic() - self._fetched_at > KEYS_FRESH_FOR:
                self._refresh_in_background()
            return found
        refreshing = self._refresh_in_background()
        if refreshing is not None:
            # shield: a caller that gives up must not cancel the fetch for the others.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(refreshing), FETCH_SECONDS)
        found = self._held(kid)
        if found is not None:
            return found
        if not self._keys:
            raise TokenRefused("issuer keys unavailable; try again in a minute", 503)
        raise TokenRefused("signed with a key the issuer does not publish")

    def _held(self, kid: str | None) -> jwt.PyJWK | None:
        found = self._keys.get(kid or "")
        if found is None and kid is None and len(self._keys) == 1:
            found = next(iter(self._keys.values()))
        return found

    def _refresh_in_background(self) -> asyncio.Task[None] | None:
        """The fetch under way, or a new one if the last began over a minute
        ago; None while backing off."""
        if self._refreshing is not None and not self._refreshing.done():
            return self._refreshing
        if time.monotonic() - self._tried_at < REFETCH_AT_MOST_EVERY:
            return None
        self._tried_at = time.monotonic()
        self._refreshing = asyncio.create_task(self._refresh())
        return self._refreshing

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(FETCH_SECONDS):
                async with httpx.AsyncClient(timeout=FETCH_SECONDS) as http:
                    uri = self._jwks_uri or await self._discover(http)
                    answer = await http.get(uri)
                    answer.raise_for_status()
                    keys = jwt.PyJWKSet.from_dict(answer.json())
        except Exception as e:  # a background task: nobody else would see it
            # Keep the keys we have; the issuer may be briefly away.
            log.warning(
                "issuer keys not refreshed (%s); keeping %d known key(s), next try in %.0f s",
                type(e).__name__,
                len(self._keys),
                REFETCH_AT_MOST_EVERY,
            )
            return
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
