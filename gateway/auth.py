"""Where credentials are read from. Azure plain webhooks can carry the intake's
shared secret only in the URL, so the intake accepts `?token=` beside
`Authorization: Bearer`; the on-call API takes the header alone."""

from __future__ import annotations

import hmac

from fastapi import Request
from pydantic import SecretStr


def presented_token(request: Request) -> str | None:
    """The alert intake's credential: the Authorization header, or `?token=`."""
    return bearer_token(request) or request.query_params.get("token")


def bearer_token(request: Request) -> str | None:
    """The on-call API's credential: the Authorization header only, so that
    people's tokens never sit in URLs (proxy logs, browser history)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def token_matches(presented: str | None, expected: SecretStr) -> bool:
    if presented is None:
        return False
    # Constant time: the comparison must not leak how much of a guess was right.
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())
