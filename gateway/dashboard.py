"""The single pane of glass: open incidents, and one page per incident with its
timeline, runbook progress, evidence and the actions the viewer's role allows.

Server-rendered HTML with a few lines of JavaScript: a server-sent event
stream says when something changed, and the page swaps in a fresh fragment.
No build step. Sign-in is the on-call API token, kept in an HttpOnly,
SameSite=Strict cookie.

The Content-Security-Policy (gateway/web_guard.py) allows no inline script or
style, so both are served from /static. Every value put into a page is
escaped, and into a URL quoted, wherever it comes from.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import secrets
import urllib.parse
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from stanch.gateway.access_page import access_section
from stanch.gateway.api import OnCall
from stanch.gateway.browser import from_our_pages, over_https
from stanch.gateway.communications import communications_section
from stanch.gateway.controls import kill_switch_banner
from stanch.gateway.related_alerts import related_alerts_section
from stanch.gateway.sso import sso_router
from stanch.models.config import ApiRole
from stanch.models.duration import age, relative, span
from stanch.models.incident import Role
from stanch.models.response_times import ResponseTimes
from stanch.models.runbook import RunbookView
from stanch.models.settings import Settings
from stanch.models.stuck import StuckWorkflow
from stanch.stores.postmortem import render_postmortem  # pure: facts in, Markdown out

COOKIE = "stanch_token"
LOGIN_COOKIE = "stanch_login"  # the sign-in form's anti-forgery token, bound to this browser
SESSION_SECONDS = 12 * 3600  # an API token kept in the browser lasts one shift
FORM_SECONDS = 600
SEVERITY_CLASS = {"Sev0": "sev0", "Sev1": "sev1", "Sev2": "sev2", "Sev3": "sev3", "Sev4": "sev4"}

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d1d1f}
header{background:#14213d;color:#fff;padding:.6rem 1rem;display:flex;justify-content:space-between}
header a{color:#fff}main{padding:1rem;max-width:70rem;margin:auto}
table{width:100%;border-collapse:collapse;background:#fff}th,td{padding:.45rem;text-align:left;
border-bottom:1px solid #e3e5e8;vertical-align:top}.sev{font-weight:700;border-radius:.3rem;
padding:.1rem .4rem;color:#fff}.sev0{background:#b00020}.sev1{background:#e65100}
.sev2{background:#f9a825;color:#000}.sev3{background:#1565c0}.sev4{background:#607d8b}
.pending{background:#fff3cd;padding:.6rem;border:1px solid #ffe08a;margin:.6rem 0}
.stuck{background:#fde7e9;padding:.6rem;border:1px solid #b00020;margin:.6rem 0}
button{padding:.45rem .9rem;margin:.2rem;border-radius:.3rem;border:1px solid #999;cursor:pointer}
.approve{background:#2e7d32;color:#fff}.reject{background:#b00020;color:#fff}
header form{display:inline}header form button{padding:0;margin:0;border:0;background:none;
color:#fff;text-decoration:underline;font:inherit}
@media (max-width:40rem){th:nth-child(4),td:nth-child(4),th:nth-child(5),td:nth-child(5),
th:nth-child(6),td:nth-child(6){display:none}main{padding:.5rem}table{font-size:.9rem}
h1{font-size:1.4rem}}
"""

SCRIPT = """
const live = document.querySelector('[data-fragment]');
if (live) {
  const events = new EventSource('/api/events');
  events.addEventListener('change', async () => {
    const r = await fetch(live.dataset.fragment, {credentials: 'same-origin'});
    if (r.ok) live.innerHTML = await r.text();
  });
}
document.addEventListener('click', async (e) => {
  const b = e.target.closest('button[data-post]');
  if (!b) return;
  const body = b.dataset.ask ? {[b.dataset.ask]: prompt(b.dataset.ask) || ''} : {};
  const r = await fetch(b.dataset.post, {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
  const answer = await r.json();
  document.getElementById('answer').textContent = r.ok ? 'done' : (answer.message || r.status);
});
document.addEventListener('submit', async (e) => {
  const f = e.target.closest('form[data-post]');
  if (!f) return;
  e.preventDefault();
  const r = await fetch(f.dataset.post, {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(Object.fromEntries(new FormData(f)))});
  const answer = await r.json();
  document.getElementById('answer').textContent = r.ok ? 'asked' : (answer.message || r.status);
});
"""


def response_panel(times: ResponseTimes, window: str) -> str:
    """MTTA and MTTR per severity: the two numbers a team's response is judged by."""
    rows = "".join(
        f"<tr><td><span class='sev {SEVERITY_CLASS.get(str(r.severity), '')}'>"
        f"{html.escape(str(r.severity))}</span></td><td>{r.incidents}</td>"
        f"<td>{_mean(r.mtta_seconds)} <small>({r.acknowledged} acked)</small></td>"
        f"<td>{_mean(r.mttr_seconds)} <small>({r.resolved} resolved)</small></td></tr>"
        for r in times.severities
    )
    choices = " · ".join(
        f"<a href='/?window={w}'>{w}</a>" if w != window else f"<b>{w}</b>"
        for w in ("24h", "7d", "30d")
    )
    return (
        f"<h2>Response times, last {html.escape(window)}</h2><p>{choices}</p>"
        "<table id='response-times'><thead><tr><th>Sev</th><th>Incidents</th>"
        "<th>MTTA</th><th>MTTR</th></tr></thead><tbody>"
        + (rows or "<tr><td colspan='4'>No incidents in this window.</td></tr>")
        + "</tbody></table>"
    )


def _mean(seconds: float | None) -> str:
    return "-" if seconds is None else span(timedelta(seconds=seconds))


def _evidence_link(name: str, location: str) -> str:
    """Evidence in Blob Storage opens from the page (the viewer's own access
    to the container decides); a file on a worker's host is shown where it is."""
    if location.startswith("https://"):
        return f'<a href="{html.escape(location)}">{html.escape(name)}</a>'
    return f"{html.escape(name)} (<code>{html.escape(location)}</code>)"


def _running_or_stuck(view: RunbookView, stuck: StuckWorkflow | None) -> str:
    return "stuck" if stuck is not None and stuck.workflow_id == view.workflow_id else "running"


def page(title: str, body: str, who: str | None) -> str:
    user = (
        f"{html.escape(who)} · <form method='post' action='/logout'>"
        "<button>sign out</button></form>"
        if who
        else ""
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)} · stanch</title>"
        "<link rel='stylesheet' href='/static/dashboard.css'></head><body>"
        f"<header><a href='/'><b>stanch</b></a><span>{user}</span></header>"
        f"<main>{body}<p id='answer' role='status'></p></main>"
        "<script src='/static/dashboard.js'></script></body></html>"
    )


def quoted(value: object) -> str:
    """A value as one path segment of a URL inside an HTML attribute."""
    return html.escape(urllib.parse.quote(str(value), safe=""))


def dashboard_router(settings: Settings, oncall: OnCall) -> APIRouter:
    """Pages over the same calls as the on-call API: who is signed in, the open
    incidents, one incident, and response times."""
    who_is, list_open, detail = oncall.who_is, oncall.list_open, oncall.detail
    router = APIRouter(include_in_schema=False)

    @router.get("/static/dashboard.js")
    async def script() -> Response:
        return Response(SCRIPT, media_type="text/javascript; charset=utf-8")

    @router.get("/static/dashboard.css")
    async def style() -> Response:
        return Response(STYLE, media_type="text/css; charset=utf-8")

    async def signed_in(request: Request) -> Any | None:
        try:
            return await who_is(request)
        except Exception:
            return None

    router.include_router(sso_router(settings, oncall, COOKIE, page))

    @router.get("/login")
    async def login_form(request: Request) -> HTMLResponse:
        return sign_in_page(request)

    def sign_in_page(request: Request, refused: str = "", status: int = 200) -> HTMLResponse:
        """The form carries a fresh anti-forgery token that must come back with
        the cookie of the same name: another site can post a form here, but
        cannot read ours, nor set our cookie (login CSRF)."""
        oidc = oncall.policy().access.oidc
        sso = (
            "<p><a id='sso' href='/login/sso'>Sign in with your identity provider</a></p><p>or</p>"
            if oidc is not None and oidc.client_id
            else ""
        )
        said = f"<p role='alert'>{html.escape(refused)}</p>" if refused else ""
        guard = secrets.token_urlsafe(24)
        response = HTMLResponse(
            page(
                "Sign in",
                (
                    f"<h1>Sign in</h1>{said}{sso}<form method='post' action='/login'>"
                    f"<input type='hidden' name='csrf' value='{guard}'>"
                    "<label>On-call API token "
                    "<input name='token' type='password' autofocus></label>"
                    "<button>Sign in</button></form>"
                ),
                None,
            ),
            status_code=status,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            guard,
            max_age=FORM_SECONDS,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=over_https(request, settings),
        )
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not from_our_pages(request, settings):
            return sign_in_page(
                request, "sign-in refused: the form was sent from another site", 403
            )
        # The request guard bounds the body (64 KiB) before it is read here.
        form = urllib.parse.parse_qs((await request.body()).decode(errors="replace"))
        guard = (form.get("csrf") or [""])[0]
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not (guard and expected and secrets.compare_digest(guard, expected)):
            return sign_in_page(request, "this sign-in form expired; sign in again", 403)
        token = (form.get("token") or [""])[0]
        try:
            await oncall.identify(token or None)
        except Exception as e:
            said = str(getattr(e, "message", "")) or "unknown token"
            return sign_in_page(request, f"sign-in refused: {said}", 401)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=over_https(request, settings),
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        # A POST from our own pages only: no other site can sign a person out.
        if not from_our_pages(request, settings):
            return PlainTextResponse("sign-out refused: sent from another site", 403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def incidents_table() -> str:
        rows = []
        for d in await list_open():
            s = d.state
            pending = ", ".join(f"{p.step} ({p.risk})" for p in d.pending_approvals) or ""
            status = f"stuck ({s.status})" if d.stuck else str(s.status)
            commander = s.roles.get(Role.INCIDENT_COMMANDER, "")
            rows.append(
                f"<tr><td><span class='sev {SEVERITY_CLASS.get(str(s.severity), '')}'>"
                f"{html.escape(str(s.severity))}</span></td>"
                f"<td><a href='/incidents/{quoted(s.incident_id)}'>{html.escape(s.title)}</a></td>"
                f"<td>{html.escape(status)}</td><td>{html.escape(commander)}</td>"
                f"<td>{age(s.opened_at)}</td><td>{s.alert_count}</td>"
                f"<td>{html.escape(pending)}</td></tr>"
            )
        return (
            "<table><thead><tr><th>Sev</th><th>Incident</th><th>Status</th>"
            "<th>Commander</th><th>Age</th><th>Alerts</th><th>Approvals waiting</th></tr>"
            "</thead><tbody>"
            + ("".join(rows) or "<tr><td colspan='7'>No open incidents.</td></tr>")
            + "</tbody></table>"
        )

    async def overview(window: str) -> str:
        times = await oncall.response_times(window)
        return await incidents_table() + response_panel(times, window)

    @router.get("/")
    async def home(request: Request, window: str = "7d") -> Response:
        who = await signed_in(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        fragment = "/fragments/incidents?" + urllib.parse.urlencode({"window": window})
        body = (
            kill_switch_banner(settings) + "<h1>Open incidents</h1>"
            f"<div data-fragment='{html.escape(fragment)}'>{await overview(window)}</div>"
        )
        return HTMLResponse(page("Incidents", body, who.person))

    @router.get("/fragments/incidents")
    async def incidents_fragment(request: Request, window: str = "7d") -> HTMLResponse:
        await who_is(request)
        return HTMLResponse(await overview(window))

    def incident_body(d: Any, role: ApiRole) -> str:
        s = d.state
        base = f"/api/incidents/{quoted(s.incident_id)}"
        act = role.rank >= ApiRole.RESPONDER.rank
        parts = [
            f"<h1><span class='sev {SEVERITY_CLASS.get(str(s.severity), '')}'>"
            f"{html.escape(str(s.severity))}</span> {html.escape(s.title)}</h1>",
            f"<p>Status <b>{html.escape(str(s.status))}</b> · "
            f"service {html.escape(s.service or '-')} · "
            f"{s.alert_count} alert(s) · opened {relative(s.opened_at)}</p>",
        ]
        if d.stuck:
            # Instead of the "waiting" it last reported: nothing moves until the code is fixed.
            parts.append(f"<div class='stuck' role='alert'>{html.escape(d.stuck.summary)}</div>")
        links = []
        if settings.web_ui_url:
            workflow = (
                f"{settings.web_ui_url.rstrip('/')}/namespaces/"
                f"{urllib.parse.quote(settings.temporal_namespace, safe='')}/workflows/"
                f"{urllib.parse.quote(s.workflow_id, safe='')}"
            )
            links.append(f"<a href='{html.escape(workflow)}'>workflow</a>")
        for resource in s.resources:
            portal = "https://portal.azure.com/#@/resource" + urllib.parse.quote(resource)
            links.append(
                f"<a href='{html.escape(portal)}'>"
                f"{html.escape(resource.rsplit('/', 1)[-1])} in the Azure portal</a>"
            )
        drafted = any(e.kind == "postmortem_drafted" for e in d.timeline)
        links.append(
            f"<a href='/incidents/{quoted(s.incident_id)}/postmortem'>"
            f"{'postmortem draft' if drafted else 'postmortem so far'}</a>"
        )
        parts.append("<p>" + " · ".join(links) + "</p>")
        parts.append(related_alerts_section(s))
        if act and s.status.is_open:
            parts.append(
                f"<button data-post='{base}/ack'>Acknowledge</button>"
                f"<button data-post='{base}/resolve'>Resolve</button>"
                f"<button data-post='{base}/notes' data-ask='text'>Add note</button>"
            )
        for p in d.pending_approvals:
            gate = f"{base}/approvals/{quoted(p.step)}"
            parts.append(
                f"<div class='pending'><b>Approval needed:</b> {html.escape(p.step)} "
                f"({html.escape(str(p.risk))} risk) · {p.required} of "
                f"{html.escape(', '.join(p.eligible))} · "
                f"so far {html.escape(', '.join(p.approvals) or 'none')} · "
                f"denied at {p.deadline:%H:%M:%S}Z<br>"
                + (
                    f"<button class='approve' data-post='{gate}/approve'>Approve</button>"
                    f"<button class='reject' data-post='{gate}/reject'>Reject</button>"
                    if act
                    else ""
                )
                + "</div>"
            )
        for view in (s.runbook, s.release):
            if view is None:
                continue
            steps = "".join(
                f"<li>{html.escape(st.name)}: <b>{html.escape(str(st.status))}</b>"
                f"{' — ' + html.escape(st.detail) if st.detail else ''}</li>"
                for st in view.steps
            )
            parts.append(
                f"<h2>Runbook {html.escape(view.runbook)} "
                f"({html.escape(str(view.outcome or _running_or_stuck(view, d.stuck)))})</h2>"
                f"<ol>{steps}</ol>"
            )
        if s.runbook_result and s.runbook_result.evidence:
            parts.append(
                "<h2>Evidence</h2><ul>"
                + "".join(
                    # A Blob is a link; a file on the worker's host is named.
                    f"<li>{_evidence_link(e.name, e.location)} "
                    f"sha256 <code>{html.escape(e.sha256)}</code></li>"
                    for e in s.runbook_result.evidence
                )
                + "</ul>"
            )
        parts.append(access_section(s, oncall.policy(), base, act))  # guests' access
        parts.append(
            "<h2>Timeline</h2><table>"
            + "".join(
                f"<tr><td>{e.at:%H:%M:%S}</td><td>{html.escape(e.actor or '')}</td>"
                f"<td>{html.escape(e.summary)}</td></tr>"
                for e in d.timeline
            )
            + "</table>"
        )
        return "".join(parts)

    @router.get("/incidents/{incident_id}")
    async def incident_page(incident_id: str, request: Request) -> Response:
        who = await signed_in(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        d = await detail(incident_id)
        body = (
            kill_switch_banner(settings)
            + f"<div data-fragment='/fragments/incidents/{quoted(incident_id)}'>"
            f"{incident_body(d, who.role)}"
            f"{await communications_section(oncall, incident_id, who.role)}</div>"
        )
        return HTMLResponse(page(d.state.title, body, who.person))

    @router.get("/incidents/{incident_id}/postmortem")
    async def postmortem(incident_id: str, request: Request) -> Response:
        """The blameless draft the incident leaves when it closes (the same
        facts `stanch postmortem` renders), as Markdown to paste or keep."""
        await who_is(request)
        d = await detail(incident_id)
        return PlainTextResponse(
            render_postmortem(d.state, d.timeline), media_type="text/markdown; charset=utf-8"
        )

    @router.get("/fragments/incidents/{incident_id}")
    async def incident_fragment(incident_id: str, request: Request) -> HTMLResponse:
        who = await who_is(request)
        comms = await communications_section(oncall, incident_id, who.role)
        return HTMLResponse(incident_body(await detail(incident_id), who.role) + comms)

    @router.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: `change` whenever any open incident changed."""
        await who_is(request)

        async def stream() -> AsyncIterator[str]:
            last = None
            yield "retry: 3000\n\n"
            while not await request.is_disconnected():
                details = await list_open()
                digest = hashlib.sha256(
                    "|".join(
                        f"{d.state.incident_id}:{d.state.status}:{len(d.timeline)}:"
                        f"{len(d.pending_approvals)}:{d.stuck is not None}"
                        for d in details
                    ).encode()
                ).hexdigest()
                if digest != last:
                    yield f"event: change\ndata: {digest}\n\n"
                    last = digest
                await asyncio.sleep(2)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    return router
