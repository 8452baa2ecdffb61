"""Dashboard sign-in through the identity provider: OpenID Connect
authorization code flow with PKCE (RFC 7636).

The flow's secrets (state, PKCE verifier, nonce) travel in a short-lived
HttpOnly cookie scoped to /login, so any gateway replica can finish a sign-in
another one started. The cookie is SameSite=Lax because the provider sends the
browser back with a top-level GET from its own site; `state` must match it,
which is what stops another site from planting its own sign-in (login CSRF).
The ID token obtained becomes the dashboard's session cookie, verified on
every request like any bearer JWT and expiring with it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
import secrets
import time
import urllib.parse
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stanch.gateway.api import OnCall
from stanch.gateway.browser import over_https
from stanch.gateway.identity import TokenRefused, discovery_document
from stanch.models.config import OidcAccess
from stanch.models.settings import Settings

FLOW_COOKIE = "stanch_sso"
FLOW_SECONDS = 600  # time a person has at the provider's sign-in page
PROVIDER_SECONDS = 5.0  # the longest a sign-in waits for the identity provider
OAUTH_ERROR = re.compile(r"[a-z_]{1,40}")  # RFC 6749 error codes: shown only if they look like one
log = logging.getLogger("stanch.gateway.sso")


def sso_router(settings: Settings, oncall: OnCall, session_cookie: str, page: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    callback = settings.gateway_url.rstrip("/") + "/login/callback"

    def refused(status: int, message: str) -> HTMLResponse:
        body = f"<h1>Sign-in failed</h1><p>{html.escape(message)}</p><a href='/login'>Again</a>"
        response = HTMLResponse(page("Sign-in failed", body, None), status_code=status)
        response.delete_cookie(FLOW_COOKIE, path="/login")
        return response

    def single_sign_on() -> OidcAccess | None:
        oidc = oncall.policy().access.oidc
        return oidc if oidc is not None and oidc.client_id else None

    @router.get("/login/sso")
    async def start(request: Request) -> Response:
        oidc = single_sign_on()
        if oidc is None:
            return refused(404, "single sign-on is not configured (access.oidc.client_id)")
        try:
            async with httpx.AsyncClient(timeout=PROVIDER_SECONDS) as http:
                endpoints = await discovery_document(http, oidc.issuer, "authorization_endpoint")
        except (httpx.HTTPError, ValueError) as e:
            return refused(503, f"the identity provider is unreachable ({type(e).__name__})")
        flow = {
            "state": secrets.token_urlsafe(24),
            "verifier": secrets.token_urlsafe(48),
            "nonce": secrets.token_urlsafe(24),
        }
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": oidc.client_id,
                "redirect_uri": callback,
                "scope": " ".join(oidc.scopes),
                "state": flow["state"],
                "nonce": flow["nonce"],
                "code_challenge": challenge(flow["verifier"]),
                "code_challenge_method": "S256",
            }
        )
        response = RedirectResponse(f"{endpoints['authorization_endpoint']}?{query}", 303)
        response.set_cookie(
            FLOW_COOKIE,
            base64.urlsafe_b64encode(json.dumps(flow).encode()).decode(),
            max_age=FLOW_SECONDS,
            path="/login",
            httponly=True,
            samesite="lax",
            secure=over_https(request, settings),
        )
        return response

    @router.get("/login/callback")
    async def finish(request: Request) -> Response:
        oidc = single_sign_on()
        if oidc is None or oidc.client_id is None:
            return refused(404, "single sign-on is not configured (access.oidc.client_id)")
        params = request.query_params
        if "error" in params:
            # The description is the provider's (or whoever crafted this link's)
            # free text: logged, never shown on our origin.
            reason = params["error"] if OAUTH_ERROR.fullmatch(params["error"]) else "error"
            log.warning(
                "identity provider refused a sign-in: %s: %.300s",
                reason,
                params.get("error_description", ""),
            )
            return refused(401, f"the identity provider refused the sign-in ({reason})")
        flow = started_flow(request.cookies.get(FLOW_COOKIE))
        state, code = params.get("state"), params.get("code")
        if flow is None or not state or not secrets.compare_digest(state, flow["state"]):
            return refused(400, "this sign-in expired or was not started here; start again")
        if not code:
            return refused(400, "the identity provider sent no authorization code")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback,
            "client_id": oidc.client_id,
            "code_verifier": flow["verifier"],
        }
        secret = oidc.resolved_secret()
        if secret:
            form["client_secret"] = secret
        try:
            async with httpx.AsyncClient(timeout=PROVIDER_SECONDS) as http:
                endpoints = await discovery_document(http, oidc.issuer, "token_endpoint")
                answer = await http.post(endpoints["token_endpoint"], data=form)
        except (httpx.HTTPError, ValueError) as e:
            return refused(503, f"the identity provider is unreachable ({type(e).__name__})")
        try:
            issued = answer.json()
        except ValueError:
            issued = None
        if not isinstance(issued, dict):
            log.warning(
                "token endpoint answered %s with something other than a JSON object",
                answer.status_code,
            )
            return refused(502, "the identity provider gave an answer we cannot read")
        id_token = issued.get("id_token") if answer.status_code == 200 else None
        if not isinstance(id_token, str):
            return refused(401, f"the identity provider issued no ID token ({answer.status_code})")
        try:
            claims = await oncall.verified_claims(id_token, oidc)
        except TokenRefused as e:
            return refused(e.status, f"ID token refused: {e.message}")
        if not secrets.compare_digest(str(claims.get("nonce", "")), flow["nonce"]):
            return refused(401, "ID token refused: it was not issued for this sign-in (nonce)")
        try:
            oncall.caller_from_claims(claims, oncall.policy(), oidc)
        except Exception as e:
            return refused(403, str(getattr(e, "message", e)))
        # A page, not a redirect: the browser arrived here from the provider's
        # site, and a SameSite=Strict cookie set now is only sent on a
        # navigation that starts on ours.
        response = HTMLResponse(
            "<!doctype html><meta http-equiv='refresh' content='0;url=/'>"
            "<a href='/'>Signed in: continue</a>"
        )
        response.delete_cookie(FLOW_COOKIE, path="/login")
        response.set_cookie(
            session_cookie,
            id_token,
            # The session ends when the ID token does (verified on every request anyway).
            max_age=max(0, int(claims.get("exp", 0)) - int(time.time())),
            httponly=True,
            samesite="strict",
            secure=over_https(request, settings),
        )
        return response

    return router


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def started_flow(cookie: str | None) -> dict[str, str] | None:
    if not cookie:
        return None
    try:
        flow = json.loads(base64.urlsafe_b64decode(cookie.encode()))
    except ValueError:
        return None
    if not isinstance(flow, dict) or not all(
        isinstance(flow.get(k), str) for k in ("state", "verifier", "nonce")
    ):
        return None
    return {k: flow[k] for k in ("state", "verifier", "nonce")}
