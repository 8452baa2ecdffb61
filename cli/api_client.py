"""People's commands speak to the on-call API, never to Temporal: the gateway
checks the credential, names the person from it, and is the one that vouches
for the decision to the workflow. Its answer is the CLI's: a 4xx is a refusal
(exit 2, in the API's own words), no answer or a 5xx means the stack is
unavailable (exit 1)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from stanch.cli.errors import Unavailable, UsageError
from stanch.client.ids import as_incident_id

TIMEOUT = httpx.Timeout(30.0, connect=5.0)  # an update waits for the workflow's answer
EXCERPT = 300  # characters of an unexpected answer worth showing


class OnCallApi:
    def __init__(self, gateway_url: str, token: str | None) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.token = token

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._call("POST", path, json=body)

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                answer = await http.request(
                    method, f"{self.gateway_url}{path}", headers=headers, **kw
                )
        except httpx.TransportError as e:
            raise Unavailable(
                f"cannot reach the gateway at {self.gateway_url}: {e or type(e).__name__} "
                "(start `stanch dev`, or set STANCH_GATEWAY_URL)"
            ) from None
        if answer.is_success:
            return answer.json()
        message = problem_message(answer)
        if answer.status_code == 401:
            message += " (set STANCH_API_TOKEN, or run `stanch login`)"
        if 400 <= answer.status_code < 500:
            raise UsageError(f"refused ({answer.status_code}): {message}")
        raise Unavailable(f"the gateway answered {answer.status_code}: {message}")


def problem_message(answer: httpx.Response) -> str:
    """The gateway's `{"error", "message"}`, FastAPI's validation `detail`, or
    an excerpt of whatever else came back."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:EXCERPT] or answer.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            problems = body.get("problems")
            extra = [str(p) for p in problems] if isinstance(problems, list) else []
            return "; ".join([body["message"], *extra])
        detail = body.get("detail")
        if isinstance(detail, list):
            return "; ".join(_field_problem(d) for d in detail)
        if isinstance(detail, str):
            return detail
    return str(body)[:EXCERPT]


def _field_problem(detail: Any) -> str:
    if not isinstance(detail, dict):
        return str(detail)[:EXCERPT]
    where = ".".join(str(x) for x in detail.get("loc", []) if x != "body")
    return f"{where}: {detail.get('msg', 'invalid')}" if where else str(detail.get("msg"))


def incident_path(incident: str, *rest: str) -> str:
    """`/api/incidents/<id>/...`; a workflow id (`incident-<id>`) is accepted too."""
    incident_id = as_incident_id(incident)
    if not incident_id:
        raise UsageError("ID: empty (an incident id, as `stanch incidents` lists them)")
    parts = [quote(p, safe="") for p in (incident_id, *rest)]
    return "/api/incidents/" + "/".join(parts)
