"""Web and API hygiene, attacked over real HTTP against the live gateway (and
its worker and Temporal): the credential is checked before the body is read,
bodies are bounded as they stream, refusals quote a short excerpt, the
dashboard's headers, cookies and forms resist other sites, every value on a
page is escaped, /openapi.json says how to authenticate, and one viewer's
response-times questions hold up nobody. Each attack fails and changes nothing."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from typing import Any

import httpx

from stanch.client.alerts import record_alerts
from stanch.client.ids import workflow_id_for
from stanch.gateway.app import Problem
from stanch.harness.waiting import eventually
from stanch.models.alert import CommonAlert
from stanch.testing.started import Started
from stanch.workflows.incident import IncidentWorkflow
from tests.support.alerts import unique_alert
from tests.support.incidents import settled
from tests.support.oncall import sign_in_with_form
from tests.support.plans import API_TOKENS
from tests.support.stack import Stack

TWENTY_MB = 20 * 1024 * 1024


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKENS[role]}"}


async def open_incident(started: Started, stack: Stack, http: httpx.AsyncClient) -> tuple[str, Any]:
    opened = (await stack.post_alert(http, unique_alert())).json()
    handle = started.add(stack.client.get_workflow_handle(opened["workflow_id"]))

    async def plan_loaded() -> bool:
        return (await handle.query(IncidentWorkflow.state)).plan_loaded

    await eventually(plan_loaded)
    # Still paging tier 1 after its plan loaded: the tests count history
    # events around their attacks, so they start once nothing is in flight.
    await settled(handle)
    return opened["incident_id"], handle


async def history_length(handle: Any) -> int:
    return len([e async for e in handle.fetch_history_events()])


async def raw_post(url: str, path: str, headers: dict[str, str], sent: bytes) -> tuple[int, str]:
    """A request whose body is never finished: only `sent` of it goes out.
    An answer proves the server did not need (or read) the rest."""
    where = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    head = f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    writer.write(head.encode() + b"\r\n" + sent)
    await writer.drain()
    status = int((await asyncio.wait_for(reader.readline(), 30)).split()[1])
    length = 0
    while (line := await asyncio.wait_for(reader.readline(), 30)) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), 30)
    writer.close()
    return status, body.decode()


async def test_the_credential_is_checked_before_the_body_is_read(stack: Stack, started: Started):
    async with httpx.AsyncClient(timeout=30) as http:
        incident, handle = await open_incident(started, stack, http)
        before = await history_length(handle)
        notes = f"{stack.url}/api/incidents/{incident}/notes"
        json_type = {"Content-Type": "application/json"}

        # Unauthenticated `{bad`: the route's existence and its JSON parser stay hidden.
        bad = await http.post(notes, content=b"{bad", headers=json_type)
        assert bad.status_code == 401, bad.text
        # A valid credential in the URL is no credential on the on-call API.
        in_url = await http.post(
            notes, content=b'{"text":"x"}', headers=json_type, params={"token": API_TOKENS["admin"]}
        )
        assert in_url.status_code == 401, in_url.text
        assert API_TOKENS["admin"] not in in_url.text
        listing = await http.get(
            f"{stack.url}/api/incidents", params={"token": API_TOKENS["viewer"]}
        )
        assert listing.status_code == 401

        # 20 MB announced, 64 KiB sent: the answer comes without the rest.
        path = f"/api/incidents/{incident}/notes"
        announced = {"Content-Type": "application/json", "Content-Length": str(TWENTY_MB)}
        status, said = await raw_post(stack.url, path, announced, b"x" * 65536)
        assert status == 401, said
        status, said = await raw_post(
            stack.url, path, {**announced, **bearer("responder")}, b"x" * 65536
        )
        assert status == 413 and "limit is 65536 bytes" in said, said
        # Chunked, so no length to judge by: refused once 64 KiB have streamed in.
        chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"
        status, said = await raw_post(
            stack.url,
            path,
            {
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
                **bearer("responder"),
            },
            b'6\r\n{"text\r\n' + chunk * 5,
        )
        assert status == 413 and "exceeds the limit" in said, said

        # An authenticated `{bad` is a 422 naming the problem, in a few bytes.
        parsed = await http.post(
            notes, content=b"{bad", headers={**json_type, **bearer("responder")}
        )
        assert parsed.status_code == 422 and "JSON" in parsed.json()["message"], parsed.text

    assert await history_length(handle) == before, "no attack reached the incident"
    timeline = await handle.query(IncidentWorkflow.timeline)
    assert not [e for e in timeline if e.kind == "note"]
    await handle.terminate("test done")


async def test_refusals_quote_a_short_excerpt_never_the_input(stack: Stack, started: Started):
    async with httpx.AsyncClient(timeout=30) as http:
        incident, handle = await open_incident(started, stack, http)
        before = await history_length(handle)
        notes = f"{stack.url}/api/incidents/{incident}/notes"
        long_note = "A" * 60_000  # under the body limit, over the field's
        refused = await http.post(notes, json={"text": long_note}, headers=bearer("responder"))
        assert refused.status_code == 422, refused.text[:300]
        assert len(refused.content) < 1000, len(refused.content)
        message = refused.json()["message"]
        assert message.startswith("body.text:") and "60000 characters" in message
        huge = await http.post(notes, json={"text": "B" * 5_000_000}, headers=bearer("responder"))
        assert huge.status_code == 413 and len(huge.content) < 1000
    assert await history_length(handle) == before
    await handle.terminate("test done")


async def test_dashboard_headers_forms_and_cookies_resist_other_sites(
    stack: Stack, started: Started
):
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        incident, handle = await open_incident(started, stack, http)
        form = await http.get("/login")
        signed = await sign_in_with_form(http, API_TOKENS["approver"])
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "max-age=" in cookie and "httponly" in cookie and "secure" not in cookie
        for page in (form, await http.get("/"), await http.get(f"/incidents/{incident}")):
            assert page.status_code == 200, page.text
            policy = page.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
            assert "unsafe-inline" not in policy
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "same-origin"
            assert page.headers["cache-control"] == "no-store"
            assert not re.search(r"<script>|<style>|\son\w+=", page.text), "inline code"
        script = await http.get("/static/dashboard.js")
        assert script.headers["content-type"].startswith("text/javascript")
        api = await http.get("/api/incidents", headers=bearer("viewer"))
        assert api.headers["cache-control"] == "no-store"

        # Sign-out is a POST from our own pages only.
        assert (await http.get("/logout")).status_code == 405
        away = await http.post("/logout", headers={"Sec-Fetch-Site": "cross-site"})
        assert away.status_code == 403
        assert (await http.get("/")).status_code == 200, "still signed in"

    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as victim:
        await victim.get("/login")  # the victim's own form cookie
        guard = victim.cookies.get("stanch_login")
        assert guard is not None
        # Login CSRF: another site posts the attacker's token into the victim's browser.
        forgeries: list[tuple[dict[str, str], dict[str, str]]] = [
            ({"Origin": "https://evil.example"}, {"csrf": guard}),
            ({"Sec-Fetch-Site": "cross-site"}, {"csrf": guard}),
            ({}, {}),  # no anti-forgery token
            ({}, {"csrf": "guessed"}),
        ]
        for headers, data in forgeries:
            planted = await victim.post(
                "/login", data={"token": API_TOKENS["admin"], **data}, headers=headers
            )
            assert planted.status_code == 403, (headers, planted.text)
            assert "stanch_token" not in planted.headers.get("set-cookie", "")
        unknown = await sign_in_with_form(victim, "not-a-token-of-anyone-" + "x" * 20)
        assert unknown.status_code == 401 and "stanch_token" not in victim.cookies

    # Behind a TLS-terminating proxy on loopback (trusted by default).
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as proxied:
        form = await proxied.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "secure" in form.headers["set-cookie"].lower()
        found = re.search(r"name='csrf' value='([^']+)'", form.text)
        assert found is not None
        secure = await proxied.post(
            "/login",
            content=urllib.parse.urlencode({"token": API_TOKENS["viewer"], "csrf": found.group(1)}),
            headers={
                "X-Forwarded-Proto": "https",
                "Content-Type": "application/x-www-form-urlencoded",
                # The browser sends the Secure cookie over https; this client would not.
                "Cookie": f"stanch_login={found.group(1)}",
            },
        )
        assert secure.status_code == 303, secure.text
        assert "secure" in secure.headers["set-cookie"].lower()
    await handle.terminate("test done")


async def test_every_value_on_a_page_is_escaped(stack: Stack):
    """Someone who can start workflows in Temporal picks the incident id."""
    evil = "x'><img src=x onerror=alert(1)>"
    event = CommonAlert.model_validate(unique_alert()).to_event()
    await record_alerts(stack.client, stack.task_queue, evil, [event])
    handle = stack.client.get_workflow_handle(workflow_id_for(evil))
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        await sign_in_with_form(http, API_TOKENS["approver"])

        async def listed() -> str | None:
            home = await http.get("/")
            return home.text if urllib.parse.quote(evil, safe="") in home.text else None

        home = await eventually(listed)
        page = await http.get(f"/incidents/{urllib.parse.quote(evil, safe='')}")
        assert page.status_code == 200, page.text
        for html_text in (home, page.text):
            assert "<img" not in html_text and "onerror=alert(1)>" not in html_text
    await handle.terminate("test done")


async def test_openapi_declares_how_to_authenticate_and_the_role_each_operation_needs(
    stack: Stack,
):
    async with httpx.AsyncClient(timeout=30) as http:
        document = (await http.get(f"{stack.url}/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "http", "scheme": "bearer"}
    assert schemes["intakeToken"]["in"] == "query" and schemes["intakeToken"]["name"] == "token"
    paths = document["paths"]
    assert paths["/alerts"]["post"]["security"] == [{"intakeToken": []}, {"intakeBearer": []}]
    assert paths["/healthz"]["get"]["security"] == []
    needs = {
        ("get", "/api/incidents"): "viewer",
        ("post", "/api/incidents/{incident_id}/ack"): "responder",
        ("post", "/api/incidents/{incident_id}/notes"): "responder",
    }
    for (method, path), role in needs.items():
        operation = paths[path][method]
        assert operation["security"] == [{"apiToken": []}]
        assert f"Needs the API role `{role}`" in operation["description"]
    for path, operations in paths.items():
        if path.startswith("/api/"):
            for operation in operations.values():
                assert "Needs the API role" in operation["description"], path


async def test_response_times_hold_up_nobody(stack: Stack):
    from stanch.gateway.api import OnCall
    from stanch.models.settings import Settings

    settings = Settings(config=stack.config, task_queue=stack.task_queue)

    async def client() -> Any:
        return stack.client

    oncall = OnCall(settings, client, Problem)
    release, computed = asyncio.Event(), []

    async def slow_measure() -> str:
        computed.append(1)
        await release.wait()
        return "measured"

    waiting = [
        asyncio.create_task(oncall._shared(("times", "slow"), 5.0, slow_measure)) for _ in range(10)
    ]
    # The listing behind every dashboard and event stream answers meanwhile.
    await asyncio.wait_for(oncall.list_open(), 30)
    assert not any(task.done() for task in waiting)
    release.set()
    assert await asyncio.gather(*waiting) == ["measured"] * 10
    assert computed == [1], "ten callers, one computation (single flight)"

    # Past the memo's size the least recently used answers go, not all of them.
    async def answer(n: int) -> int:
        computed.append(n)
        return n

    await oncall._shared(("keep",), 60.0, lambda: answer(-1))
    for n in range(100):
        await oncall._shared(("cycle", n), 60.0, lambda n=n: answer(n))  # type: ignore[misc]
        await oncall._shared(("keep",), 60.0, lambda: answer(-1))
    assert computed.count(-1) == 1, "a question asked all along stays answered"

    # Over HTTP: windows that differ by minutes share one answer.
    async with httpx.AsyncClient(timeout=30) as http:
        answers = [
            (
                await http.get(
                    f"{stack.url}/api/response-times",
                    params={"window": window},
                    headers=bearer("viewer"),
                )
            ).json()
            for window in ("61m", "62m", "119m", "2h")
        ]
    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1, answers
