"""The intake's shared secret. Azure plain webhooks can carry a credential only
in the URL, so `?token=` is accepted beside `Authorization: Bearer`."""

from __future__ import annotations

import hmac

from fastapi import Request
from pydantic import SecretStr


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token")


def token_matches(presented: str | None, expected: SecretStr) -> bool:
    if presented is None:
        return False
    # Constant time: the comparison must not leak how much of a guess was right.
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())
