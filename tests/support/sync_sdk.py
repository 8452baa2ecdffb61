"""Azure's synchronous SDK clients pointed at an azuresim, as a runbook author
would call them in a notebook: a static token, azuresim's CA, no retries."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from azure.core.credentials import AccessToken, AccessTokenInfo

from stanch.azuresim import AzureSim

Client = TypeVar("Client")


class StaticToken:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("azuresim", int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> AccessTokenInfo:
        return AccessTokenInfo("azuresim", int(time.time()) + 3600)


def arm_client(kind: type[Client], sim: AzureSim, *args: Any) -> Client:
    """`kind(credential, *args)` against `sim` (management clients)."""
    return kind(  # type: ignore[call-arg]
        StaticToken(), *args, base_url=sim.url, connection_verify=str(sim.ca_file), retry_total=0
    )
