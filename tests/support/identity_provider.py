"""A local identity provider at the wire: an RSA signing key, its JWKS and an
OpenID discovery document served over real HTTP on loopback, in Entra ID's
layout (`/<tenant>/discovery/v2.0/keys`, issuer `<authority>/<tenant>/v2.0`).
What cannot exist here is Entra ID itself; the gateway's code path is the one
it takes against login.microsoftonline.com."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


class IdentityProvider:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:12]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.authority = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = f"{self.authority}/{TENANT}/v2.0"
        self.key_fetches = 0
        # Sign-in (authorization code + PKCE): who signs in next, and codes issued.
        self.user: dict[str, Any] = {}
        self.codes: dict[str, dict[str, str]] = {}
        # Device authorization grant (RFC 8628): codes issued, the polls seen
        # (time, answer), refresh grants served, and how long tokens live.
        self.lifetime = 3600
        self.device_interval = 1
        self.slow_down_next = 0  # answer this many polls with slow_down regardless
        self.devices: dict[str, dict[str, Any]] = {}
        self.polls: list[tuple[float, str]] = []
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.refreshes = 0

    def __enter__(self) -> IdentityProvider:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, key: Any = None, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "tid": TENANT, "iat": now, "nbf": now}
        body["exp"] = now + self.lifetime
        body.update(claims)
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None},
            key or self.key,
            algorithm="RS256",
            headers={"kid": kid or self.kid},
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path.endswith("/.well-known/openid-configuration"):
                    base = provider.issuer
                    body = {
                        "issuer": base,
                        "jwks_uri": f"{base}/keys",
                        "authorization_endpoint": f"{base}/authorize",
                        "token_endpoint": f"{base}/token",
                        "device_authorization_endpoint": f"{base}/devicecode",
                    }
                elif path.endswith("/keys"):
                    provider.key_fetches += 1
                    body = provider.jwks()
                elif path.endswith("/authorize"):
                    self.sign_in(dict(urllib.parse.parse_qsl(query)))
                    return
                elif path.endswith("/device"):
                    # The verification page: the person (provider.user) is
                    # signed in in their browser and enters the code shown.
                    entered = dict(urllib.parse.parse_qsl(query)).get("user_code", "")
                    found = [d for d in provider.devices.values() if d["user_code"] == entered]
                    if not found:
                        self.answer(404, {"error": "unknown user code"})
                        return
                    found[0]["approved_as"] = dict(provider.user)
                    body = {"status": "signed in"}
                else:
                    self.send_error(404)
                    return
                self.answer(200, body)

            def sign_in(self, asked: dict[str, str]) -> None:
                """The person (provider.user) signs in at once and is sent back."""
                code = uuid.uuid4().hex
                provider.codes[code] = asked
                back = urllib.parse.urlencode({"code": code, "state": asked.get("state", "")})
                self.send_response(302)
                self.send_header("Location", f"{asked['redirect_uri']}?{back}")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path.endswith("/devicecode"):
                    self.device_authorization(form)
                    return
                if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code":
                    self.device_token(form)
                    return
                if form.get("grant_type") == "refresh_token":
                    self.refresh(form)
                    return
                asked = provider.codes.pop(form.get("code", ""), None)  # codes are single-use
                verifier = form.get("code_verifier", "")
                proof = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                if (
                    asked is None
                    or form.get("client_id") != asked["client_id"]
                    or form.get("redirect_uri") != asked["redirect_uri"]
                    or proof.rstrip(b"=").decode() != asked["code_challenge"]
                ):
                    self.answer(400, {"error": "invalid_grant"})
                    return
                token = provider.token(
                    aud=asked["client_id"], nonce=asked["nonce"], **provider.user
                )
                self.answer(200, {"id_token": token, "token_type": "Bearer"})

            def device_authorization(self, form: dict[str, str]) -> None:
                device_code = uuid.uuid4().hex
                user_code = uuid.uuid4().hex[:8].upper()
                provider.devices[device_code] = {
                    "user_code": user_code,
                    "client_id": form.get("client_id"),
                    "scope": form.get("scope", ""),
                    "interval": provider.device_interval,
                    "last_poll": None,
                    "approved_as": None,
                }
                self.answer(
                    200,
                    {
                        "device_code": device_code,
                        "user_code": user_code,
                        "verification_uri": f"{provider.issuer}/device",
                        "expires_in": 600,
                        "interval": provider.device_interval,
                    },
                )

            def device_token(self, form: dict[str, str]) -> None:
                device = provider.devices.get(form.get("device_code", ""))
                if device is None or form.get("client_id") != device["client_id"]:
                    self.answer(400, {"error": "invalid_grant"})
                    return
                now = time.monotonic()
                early = (
                    device["last_poll"] is not None
                    and now - device["last_poll"] < device["interval"] - 0.05
                )
                device["last_poll"] = now
                if early or provider.slow_down_next > 0:
                    provider.slow_down_next = max(0, provider.slow_down_next - 1)
                    device["interval"] += 5  # RFC 8628 3.5: for this and all later polls
                    provider.polls.append((now, "slow_down"))
                    self.answer(400, {"error": "slow_down"})
                    return
                if device["approved_as"] is None:
                    provider.polls.append((now, "authorization_pending"))
                    self.answer(400, {"error": "authorization_pending"})
                    return
                provider.polls.append((now, "issued"))
                del provider.devices[form["device_code"]]  # device codes are single-use
                self.issue(device["approved_as"], str(device["client_id"]), device["scope"])

            def refresh(self, form: dict[str, str]) -> None:
                held = provider.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if held is None or held["client_id"] != form.get("client_id"):
                    self.answer(400, {"error": "invalid_grant"})
                    return
                provider.refreshes += 1
                self.issue(held["claims"], held["client_id"], held["scope"])

            def issue(self, claims: dict[str, Any], client_id: str, scope: str) -> None:
                """An ID token for our client, and a rotating refresh token."""
                refresh = uuid.uuid4().hex
                provider.refresh_tokens[refresh] = {
                    "claims": claims,
                    "client_id": client_id,
                    "scope": scope,
                }
                self.answer(
                    200,
                    {
                        "id_token": provider.token(aud=client_id, **claims),
                        "access_token": provider.token(aud="api://graph", **claims),
                        "refresh_token": refresh,
                        "token_type": "Bearer",
                        "expires_in": provider.lifetime,
                        "scope": scope,
                    },
                )

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
