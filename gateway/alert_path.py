"""POST /alerts on a short path: answered before FastAPI's middleware stack and
routing, which cost more CPU per alert than everything stanch does for it.

An alert storm is thousands of small identical requests. FastAPI's request
handling (its telemetry check, body-limit, exception and exit-stack layers,
dependency solving, response-model validation and serialisation) took about a
quarter of the gateway's CPU per alert. Here the request meets exactly what
the route did: the security headers every response carries, the intake's own
credential check and body bound, validation, and the same exception handlers
(so a refusal is the same status, body and metric as before). Every other
path and method still goes through FastAPI, and /alerts stays documented in
the OpenAPI document by its FastAPI route, which answers the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from stanch.gateway.web_guard import security_headers, with_security_headers

PATH = "/alerts"


class Accepted(bytes):
    """The 202's JSON body. Every accepted alert of a storm gets one, so it is
    sent as two ASGI messages with headers made once, not through a Response
    object and the security-header wrapper (the same bytes on the wire)."""


_ACCEPTED_HEADERS = [
    (b"content-type", b"application/json"),
    *((name.lower().encode(), value.encode()) for name, value in security_headers(PATH).items()),
]
Answer = Callable[[Request], Awaitable[Response | Accepted]]
Crashed = Callable[[Request, Exception], Awaitable[Response]]


class GatewayApp(FastAPI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._alerts: tuple[Answer, Crashed] | None = None

    def answer_alerts(self, answer: Answer, crashed: Crashed) -> None:
        """`answer` turns a POST /alerts into its response (refusals included);
        `crashed` answers what it raised unexpectedly, as the app's 500 handler."""
        self._alerts = (answer, crashed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._alerts is None
            or scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
        ):
            await super().__call__(scope, receive, send)
            return
        answer, crashed = self._alerts
        request = Request(scope, receive)
        try:
            response = await answer(request)
        except Exception as e:
            # As Starlette's ServerErrorMiddleware: answer 500, then re-raise
            # so the server logs the traceback.
            await (await crashed(request, e))(scope, receive, with_security_headers(send, PATH))
            raise
        if isinstance(response, Accepted):
            length = (b"content-length", str(len(response)).encode())
            headers = [length, *_ACCEPTED_HEADERS]
            await send({"type": "http.response.start", "status": 202, "headers": headers})
            await send({"type": "http.response.body", "body": response})
            return
        await response(scope, receive, with_security_headers(send, PATH))
