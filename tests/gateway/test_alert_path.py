"""POST /alerts is answered before FastAPI's middleware and routing
(gateway/alert_path.py), for CPU: what a sender sees must not change. Over
real HTTP against the real gateway, worker and Temporal dev server: the 202
is the IntakeResult the route documents, with the headers every response
carries; a refusal keeps its status, body, headers and metric; every other
method and path still goes through FastAPI."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from stanch.client.alerts import IntakeResult
from stanch.client.ids import workflow_id_for
from stanch.models.alert import CommonAlert
from tests.support.alerts import unique_alert
from tests.support.incidents import exists
from tests.support.stack import Stack

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def refused(status: int) -> float:
    return REGISTRY.get_sample_value("stanch_alerts_refused_total", {"status": str(status)}) or 0.0


def secured(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_the_202_is_the_documented_intake_result_with_every_security_header(stack: Stack):
    body = unique_alert()
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await stack.post_alert(http, body)
        assert answer.status_code == 202, answer.text
        assert answer.headers["content-type"] == "application/json"
        secured(answer)
        result = IntakeResult.model_validate_json(answer.content)
        assert set(answer.json()) == set(IntakeResult.model_fields)
        assert result.workflow_id == workflow_id_for(CommonAlert.model_validate(body).fingerprint())
        assert not result.deduplicated and result.note is None
        assert await exists(stack.client, result.workflow_id)

        # The route is still FastAPI's for the OpenAPI document and other methods.
        document = (await http.get(f"{stack.url}/openapi.json")).json()
        operation = document["paths"]["/alerts"]["post"]
        assert "202" in operation["responses"]
        assert (await http.get(f"{stack.url}/alerts")).status_code == 405


async def test_a_refusal_keeps_its_status_body_headers_and_metric(stack: Stack):
    rule = unique_alert()["data"]["essentials"]["alertRule"]
    async with httpx.AsyncClient(timeout=60) as http:
        before = refused(401), refused(422)
        wrong = await stack.post_alert(http, unique_alert(rule=rule), params={"token": "wrong"})
        invalid = await stack.post_alert(http, {"schemaId": "somethingElse"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "unauthorized", "message": "missing or wrong intake token"}
    assert invalid.status_code == 422
    assert invalid.json()["error"] == "invalid_alert" and "schemaId" in invalid.json()["message"]
    for answer in (wrong, invalid):
        secured(answer)
    assert (refused(401), refused(422)) == (before[0] + 1, before[1] + 1)
    fingerprint = CommonAlert.model_validate(unique_alert(rule=rule)).fingerprint()
    assert not await exists(stack.client, workflow_id_for(fingerprint)), "a refusal opens nothing"
