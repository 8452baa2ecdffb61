"""The gateway's codec endpoint over real HTTP, against a history read straight
from the Temporal server: it opens sealed payloads for a credential with the
viewer role and for no one else, for the `temporal` CLI and for the Web UI's
origin (CORS), and a refusal reveals nothing."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.history.v1 import History
from temporalio.testing import WorkflowEnvironment

from stanch.client.codec import ENCODING, KEY_ID_FIELD
from stanch.client.ids import workflow_id_for
from stanch.harness.binaries import installed
from stanch.harness.waiting import eventually
from tests.support.alerts import unique_alert
from tests.support.encryption import WEB_UI, new_key, payloads_in, without_plain_by_design
from tests.support.incidents import settled
from tests.support.plans import API_TOKENS, auth
from tests.support.stack import Stack

pytestmark = pytest.mark.devserver


@pytest.fixture
def stack_payload_keys() -> dict[str, bytes]:
    """The conftest's `stack` seals with one key."""
    return {"2026-06": new_key()}


async def incident_with_title(stack: Stack, http: httpx.AsyncClient) -> tuple[str, str]:
    """An incident opened through the gateway, settled; its (title, workflow id)."""
    title = f"Payments DB failover {uuid.uuid4().hex[:8]}"
    opened = await stack.post_alert(http, unique_alert(rule=title))
    assert opened.status_code == 202, opened.text
    workflow_id = workflow_id_for(opened.json()["incident_id"])

    async def shown() -> bool:
        url = f"{stack.url}/api/incidents/{opened.json()['incident_id']}"
        return (await http.get(url, headers=auth("viewer"))).status_code == 200

    await eventually(shown, 30, f"{workflow_id} answering")
    await settled(stack.client.get_workflow_handle(workflow_id))
    return title, workflow_id


async def stored_payloads(env: WorkflowEnvironment, workflow_id: str) -> list[Payload]:
    fetched = await env.client.get_workflow_handle(workflow_id).fetch_history()
    return payloads_in(without_plain_by_design(History(events=fetched.events)))


def as_body(payloads: list[Payload]) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


def from_body(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


async def test_the_history_decodes_with_a_credential_and_not_without(
    stack: Stack, dev_env: WorkflowEnvironment
):
    async with httpx.AsyncClient(timeout=30) as http:
        title, workflow_id = await incident_with_title(stack, http)
        try:
            payloads = await stored_payloads(dev_env, workflow_id)
            assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
            body = as_body(payloads)
            assert title not in body
            events_before = len(
                (await dev_env.client.get_workflow_handle(workflow_id).fetch_history()).events
            )

            for headers in (
                {},
                {"Authorization": "Bearer not-a-token"},
                {"Cookie": "stanch_token=nope"},
            ):
                refused = await http.post(
                    f"{stack.url}/codec/decode", content=body, headers=headers
                )
                assert refused.status_code == 401, refused.text
                assert refused.json()["error"] == "unauthorized"
                assert title not in refused.text and "payloads" not in refused.text
            # Nothing of the request is judged before the credential: garbage is a 401 too.
            garbage = await http.post(f"{stack.url}/codec/decode", content=b"{not json")
            assert garbage.status_code == 401

            for role in ("viewer", "admin"):
                opened = await http.post(
                    f"{stack.url}/codec/decode",
                    content=body,
                    headers={
                        **auth(role),
                        "Content-Type": "application/json",
                        "X-Namespace": "default",
                    },
                )
                assert opened.status_code == 200, opened.text
                plain = from_body(opened.text)
                assert len(plain) == len(payloads)
                assert all(p.metadata["encoding"] != ENCODING for p in plain)
                assert title.encode() in b"".join(p.data for p in plain)

            # Bad input: a clear 400, naming the problem; the history unchanged.
            malformed = await http.post(
                f"{stack.url}/codec/decode", content=b'{"payload": []}', headers=auth("viewer")
            )
            assert malformed.status_code == 400 and "payloads" in malformed.json()["message"]
            relabelled = Payload()
            relabelled.CopyFrom(payloads[0])
            relabelled.metadata[KEY_ID_FIELD] = b"2019-01"
            unknown = await http.post(
                f"{stack.url}/codec/decode", content=as_body([relabelled]), headers=auth("viewer")
            )
            assert unknown.status_code == 400 and "'2019-01'" in unknown.json()["message"]
            after = len(
                (await dev_env.client.get_workflow_handle(workflow_id).fetch_history()).events
            )
            assert after == events_before
        finally:
            await stack.client.get_workflow_handle(workflow_id).terminate("test done")


async def test_encode_then_decode_round_trips(stack: Stack):
    original = Payload(metadata={"encoding": b"json/plain"}, data=b'{"note": "Zed Quinlan called"}')
    async with httpx.AsyncClient(timeout=30) as http:
        encoded = await http.post(
            f"{stack.url}/codec/encode", content=as_body([original]), headers=auth("viewer")
        )
        assert encoded.status_code == 200, encoded.text
        (sealed_payload,) = from_body(encoded.text)
        assert sealed_payload.metadata["encoding"] == ENCODING and b"Zed" not in sealed_payload.data
        decoded = await http.post(
            f"{stack.url}/codec/decode", content=encoded.text, headers=auth("viewer")
        )
        assert from_body(decoded.text) == [original]
        refused = await http.post(f"{stack.url}/codec/encode", content=as_body([original]))
        assert refused.status_code == 401 and "Zed" not in refused.text


async def test_the_temporal_cli_shows_plaintext_through_the_codec_endpoint(
    stack: Stack, dev_env: WorkflowEnvironment
):
    address = dev_env.client.service_client.config.target_host
    async with httpx.AsyncClient(timeout=30) as http:
        title, workflow_id = await incident_with_title(stack, http)
    try:

        async def show(*codec: str) -> str:
            process = await asyncio.create_subprocess_exec(
                installed("temporal"),
                "workflow",
                "show",
                "--workflow-id",
                workflow_id,
                "--address",
                address,
                "--detailed",  # payloads as their decoded values
                *codec,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0 or codec, err.decode()
            return out.decode() + err.decode()

        endpoint = ["--codec-endpoint", f"{stack.url}/codec"]
        assert title not in await show(), "without the codec the CLI sees ciphertext"
        shown = await show(*endpoint, "--codec-auth", f"Bearer {API_TOKENS['viewer']}")
        assert title in shown
        refused = await show(*endpoint, "--codec-auth", "Bearer wrong-token")
        assert title not in refused
    finally:
        await stack.client.get_workflow_handle(workflow_id).terminate("test done")


async def test_the_web_ui_origin_alone_gets_cors(stack: Stack):
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with httpx.AsyncClient(timeout=30) as http:
        allowed = await http.options(f"{stack.url}/codec/decode", headers={"Origin": WEB_UI, **ask})
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == WEB_UI
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "authorization" in allowed.headers["access-control-allow-headers"]

        other = await http.options(
            f"{stack.url}/codec/decode", headers={"Origin": "https://evil.example", **ask}
        )
        assert other.status_code == 403
        assert "access-control-allow-origin" not in other.headers

        body = as_body([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
        from_ui = await http.post(
            f"{stack.url}/codec/decode", content=body, headers={"Origin": WEB_UI, **auth("viewer")}
        )
        assert (
            from_ui.status_code == 200 and from_ui.headers["access-control-allow-origin"] == WEB_UI
        )
        # The UI sees the refusal as a 401, not as a network error.
        unsigned = await http.post(
            f"{stack.url}/codec/decode", content=body, headers={"Origin": WEB_UI}
        )
        assert (
            unsigned.status_code == 401
            and unsigned.headers["access-control-allow-origin"] == WEB_UI
        )
        elsewhere = await http.post(
            f"{stack.url}/codec/decode",
            content=body,
            headers={"Origin": "https://evil.example", **auth("viewer")},
        )
        assert "access-control-allow-origin" not in elsewhere.headers
        # The rest of the API grants the UI's origin nothing.
        api = await http.get(
            f"{stack.url}/api/incidents", headers={"Origin": WEB_UI, **auth("viewer")}
        )
        assert "access-control-allow-origin" not in api.headers
