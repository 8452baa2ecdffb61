"""`stanch alert send FILE`: post an alert to the gateway as Azure Monitor would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from stanch.cli.errors import Unavailable, UsageError
from stanch.models.settings import Settings


def send_alert(settings: Settings, path: Path) -> dict[str, Any]:
    try:
        body = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    if settings.alert_token is None:
        raise UsageError("STANCH_ALERT_TOKEN is not set (is `stanch dev` running here?)")
    try:
        response = httpx.post(
            f"{settings.gateway_url.rstrip('/')}/alerts",
            content=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {settings.alert_token.get_secret_value()}",
            },
            timeout=30,
        )
    except httpx.HTTPError as e:
        raise Unavailable(f"gateway at {settings.gateway_url} not reachable: {e}") from None
    try:
        answer: dict[str, Any] = response.json()
    except json.JSONDecodeError:
        answer = {"message": response.text}
    if 400 <= response.status_code < 500:
        raise UsageError(f"{path}: refused ({response.status_code}): {answer.get('message')}")
    if response.status_code >= 500:
        raise Unavailable(f"gateway answered {response.status_code}: {answer.get('message')}")
    return answer
