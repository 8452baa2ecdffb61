"""What every request meets before a route sees it: the on-call API's
credential checked before a byte of the body is read, a bounded body, and
the response headers that keep the dashboard out of other sites' frames and
scripts.

A pure ASGI middleware: FastAPI reads and parses a route's JSON body before
its dependencies run, so a dependency cannot refuse an unauthenticated caller
before parsing, nor stop a 20 MB body from being buffered.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024  # the largest API request is a 4000-character note
CALLER = "stanch.caller"  # request.state key: who the guard found calling

# No inline script or style: everything the dashboard runs comes from /static.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load their viewer from a CDN with inline
# script: they get only what keeps them out of frames.
DOCS_POLICY = "frame-ancestors 'none'"
DOCS = ("/docs", "/redoc")

Authenticate = Callable[[Request], Awaitable[Any]]
Refusal = Callable[[Exception], tuple[int, dict[str, Any]] | None]


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        authenticate: Authenticate,
        refusal: Refusal,
        own_limit: Collection[str] = ("/alerts",),
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app, self.authenticate, self.refusal = app, authenticate, refusal
        self.own_limit, self.max_body_bytes = own_limit, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        send = with_security_headers(send, path)
        if path.startswith("/api/"):
            try:
                # Headers and cookies only: the body is not read yet.
                caller = await self.authenticate(Request(scope))
            except Exception as e:
                refused = self.refusal(e)
                if refused is None:
                    raise
                await answer(send, *refused)
                return
            scope.setdefault("state", {})[CALLER] = caller
        if path in self.own_limit:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await answer(send, *self._too_large(f"body is {declared} bytes"))
            return
        await BoundedBody(self, scope, receive, send).run()

    def _too_large(self, what: str) -> tuple[int, dict[str, Any]]:
        return 413, {
            "error": "too_large",
            "message": f"{what}; the limit is {self.max_body_bytes} bytes",
        }


class BoundedBody:
    """Counts the body as it streams in (a chunked body declares no length):
    past the limit, the caller gets a 413 and the route sees a disconnect."""

    def __init__(self, guard: RequestGuard, scope: Scope, receive: Receive, send: Send) -> None:
        self.guard, self.scope, self._receive, self._send = guard, scope, receive, send
        self.received = 0
        self.started = self.refused = False

    async def run(self) -> None:
        await self.guard.app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.guard.max_body_bytes:
                self.refused = True
                if not self.started:
                    self.started = True
                    refusal = self.guard._too_large("body exceeds the limit")
                    await answer(self._send, *refusal)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the 413 is the answer; whatever the route says after is dropped
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def security_headers(path: str) -> dict[str, str]:
    """What every response carries unless it set its own."""
    docs = path in DOCS or path.startswith("/docs/")
    return {
        "Content-Security-Policy": DOCS_POLICY if docs else POLICY,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # Nothing to other sites; not no-referrer, under which a browser
        # sends `Origin: null` even on our own forms' posts.
        "Referrer-Policy": "same-origin",
        # Incident pages and API answers are for the signed-in viewer only.
        "Cache-Control": "no-store",
    }


def with_security_headers(send: Send, path: str) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in security_headers(path).items():
                headers.setdefault(name, value)
        await send(message)

    return sending


async def answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
