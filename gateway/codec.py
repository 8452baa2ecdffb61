"""The codec endpoint: what lets people read sealed incident data in the
Temporal Web UI (its codec endpoint setting) and the `temporal` CLI
(`--codec-endpoint <gateway>/codec --codec-auth "Bearer <token>"`), without
either holding the payload keys.

The Temporal codec server protocol: `POST /codec/decode` and `/codec/encode`
take and answer `{"payloads": [...]}`, Payloads in protobuf's JSON form
(base64 fields). The caller is a person with at least the viewer role, by the
on-call API's bearer token or the dashboard's sign-in (cookie), checked before
a byte of the body is read; a refusal says nothing about the payloads. The
Web UI calls from its own origin: that origin (STANCH_CODEC_CORS_ORIGINS, else
the origin of STANCH_WEB_UI_URL) and no other gets the CORS headers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from stanch.client.codec import PayloadDecryptionError, PayloadEncryption
from stanch.client.connection import payload_keys
from stanch.gateway.api import OnCall
from stanch.gateway.web_guard import Refusal
from stanch.models.config import ApiRole
from stanch.models.settings import Settings

CODEC_PATHS = ("/codec/decode", "/codec/encode")
# A workflow task's payloads stay under Temporal's 4 MB gRPC limit; base64 and
# JSON add about a third.
MAX_CODEC_BYTES = 8 * 1024 * 1024
ALLOWED_HEADERS = "authorization, content-type, x-namespace"
PREFLIGHT_SECONDS = 600

log = logging.getLogger("stanch.gateway.codec")
Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


class CodecRefused(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def codec_router(settings: Settings, oncall: OnCall, refusal: Refusal) -> APIRouter:
    """`refusal` turns the credential check's exception into (status, body)."""
    codec = PayloadEncryption(payload_keys(settings))  # a broken key file stops the start
    origins = allowed_origins(settings)
    router = APIRouter(prefix="/codec", tags=["codec"])

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or origin not in origins:
            return {"Vary": "Origin"}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def refused(request: Request, status: int, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=cors(request))

    async def apply(request: Request, transform: Transform, verb: str) -> Response:
        try:
            who = await oncall.who_is(request, ApiRole.VIEWER)
        except Exception as e:
            answer = refusal(e)
            if answer is None:
                raise
            return refused(request, *answer)
        try:
            given = parse_payloads(await read_bounded(request))
            try:
                done = await transform(given.payloads)
            except PayloadDecryptionError as e:
                raise CodecRefused(400, "undecodable", str(e)) from None
        except CodecRefused as e:
            return refused(request, e.status, {"error": e.error, "message": e.message})
        namespace = request.headers.get("x-namespace", settings.temporal_namespace)
        # Who read sealed incident data, and how much: the payloads themselves never.
        log.info(
            "codec %s by %s: %d payload(s), namespace %s", verb, who.person, len(done), namespace
        )
        return Response(
            json_format.MessageToJson(Payloads(payloads=done), indent=None),
            media_type="application/json",
            headers=cors(request),
        )

    @router.post("/decode", include_in_schema=False)
    async def decode(request: Request) -> Response:
        return await apply(request, codec.decode, "decode")

    @router.post("/encode", include_in_schema=False)
    async def encode(request: Request) -> Response:
        return await apply(request, codec.encode, "encode")

    @router.options("/{operation}", include_in_schema=False)
    async def preflight(operation: str, request: Request) -> Response:
        """The browser's question before the Web UI's POST: answered for the
        configured origin only, before any credential (browsers send none here)."""
        if f"/codec/{operation}" not in CODEC_PATHS:
            return refused(
                request, 404, {"error": "not_found", "message": "no such codec operation"}
            )
        origin = request.headers.get("origin")
        if origin is None or origin not in origins:
            return refused(
                request,
                403,
                {
                    "error": "forbidden",
                    "message": f"origin {origin!r} may not call the codec "
                    "(STANCH_CODEC_CORS_ORIGINS)",
                },
            )
        return Response(
            status_code=204,
            headers={
                **cors(request),
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_SECONDS),
            },
        )

    return router


def allowed_origins(settings: Settings) -> frozenset[str]:
    """Exact origins (scheme://host[:port]); a wildcard cannot carry credentials."""
    if settings.codec_cors_origins:
        given = [o.strip() for o in settings.codec_cors_origins.split(",") if o.strip()]
        where = "STANCH_CODEC_CORS_ORIGINS"
    elif settings.web_ui_url:
        given, where = [settings.web_ui_url], "STANCH_WEB_UI_URL"
    else:
        return frozenset()
    found = set()
    for value in given:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{where}: {value!r} is not an http(s) origin")
        if value != settings.web_ui_url and parts.path not in ("", "/"):
            raise ValueError(f"{where}: {value!r}: an origin has no path")
        found.add(f"{parts.scheme}://{parts.netloc}")
    return frozenset(found)


async def read_bounded(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CODEC_BYTES:
        raise CodecRefused(
            413, "too_large", f"body is {declared} bytes; the limit is {MAX_CODEC_BYTES}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_CODEC_BYTES:
            raise CodecRefused(
                413, "too_large", f"body exceeds the limit of {MAX_CODEC_BYTES} bytes"
            )
    return bytes(body)


def parse_payloads(body: bytes) -> Payloads:
    try:
        return json_format.Parse(body, Payloads())
    except (json_format.ParseError, UnicodeDecodeError, RecursionError) as e:
        # The parser's message names the field; only its start, never a payload.
        raise CodecRefused(
            400, "malformed", f'expected {{"payloads": [...]}} in protobuf JSON: {str(e)[:160]}'
        ) from None
