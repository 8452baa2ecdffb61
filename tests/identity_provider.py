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
        body = {"iss": self.issuer, "tid": TENANT, "iat": now, "nbf": now, "exp": now + 3600}
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
                    }
                elif path.endswith("/keys"):
                    provider.key_fetches += 1
                    body = provider.jwks()
                elif path.endswith("/authorize"):
                    self.sign_in(dict(urllib.parse.parse_qsl(query)))
                    return
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
