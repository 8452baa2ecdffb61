"""The gateway's HTTP app: alert intake and health."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import SecretStr, ValidationError
from starlette.exceptions import HTTPException
from temporalio.client import Client
from temporalio.service import RPCError

from stanch.client.alerts import IntakeResult
from stanch.gateway.access import access_router
from stanch.gateway.alert_path import Accepted, GatewayApp
from stanch.gateway.api import api_router
from stanch.gateway.audit_trail import AlertAuditTrail
from stanch.gateway.auth import presented_token, token_matches
from stanch.gateway.codec import CODEC_PATHS, codec_router
from stanch.gateway.communications import communications_router
from stanch.gateway.controls import controls_router
from stanch.gateway.dashboard import dashboard_router
from stanch.gateway.fleet_metrics import FleetMetrics
from stanch.gateway.grouping import AlertGrouping
from stanch.gateway.identity import TokenRefused, looks_like_jwt
from stanch.gateway.intake import AlertIntake, lasting_refusal
from stanch.gateway.openapi_security import declare_security
from stanch.gateway.secure_webhook import SecureWebhook
from stanch.gateway.slack import slack_router
from stanch.gateway.web_guard import RequestGuard
from stanch.models.alert import CommonAlert
from stanch.models.audit import AuditEntry
from stanch.models.errors import describe_validation_error
from stanch.models.settings import Settings
from stanch.stores.postgres.database import DatabaseUnavailable
from stanch.stores.select import audit_log, toggle_store

MAX_ALERT_BYTES = 1024 * 1024  # Azure caps payloads at 256 KB; 1 MiB leaves room
MAX_ALERT_DEPTH = 32  # the common alert schema nests about 6 deep
EXCERPT_CHARS = 80  # of a refused input, enough to recognise it, never the whole

log = logging.getLogger("stanch.gateway")
ALERTS = Counter("stanch_alerts_received", "alerts accepted by the intake", ["condition"])
REFUSED = Counter("stanch_alerts_refused", "alerts refused by the intake", ["status"])
INTAKE = Histogram("stanch_intake_seconds", "time to record an alert durably")
tracer = trace.get_tracer("stanch.gateway")


class Problem(Exception):
    """A refusal with a status and a message that names what is wrong."""

    def __init__(self, status: int, error: str, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.problems = problems or []


def create_app(
    settings: Settings, connect: Callable[[Settings], Awaitable[Client]] | None = None
) -> FastAPI:
    token = settings.alert_token
    webhook = secure_webhook(settings)
    if (token is None or not token.get_secret_value()) and webhook is None:
        raise ValueError(
            "neither STANCH_ALERT_TOKEN nor STANCH_ENTRA_TENANT_ID/STANCH_ENTRA_AUDIENCE "
            "is set: the alert intake must be authenticated"
        )
    state: dict[str, Client] = {}
    audit = AlertAuditTrail(audit_log(settings))  # files, or the fleet's database

    async def client() -> Client:
        if "client" not in state:
            if connect is None:
                from stanch.client.connection import connect as default_connect

                state["client"] = await default_connect(settings)
            else:
                state["client"] = await connect(settings)
        return state["client"]

    # Decided once: the process configures tracing before it builds the app
    # (telemetry.configure_tracing), and asking per request read the
    # environment each time (about 10 % of the intake's samples under a storm).
    traced = tracing()
    intake = AlertIntake(
        client,
        settings.task_queue,
        settings.coalesce_window_ms,
        settings.coalesce_linger_ms,
        route=AlertGrouping(settings.config).incident_id_for,
    )
    fleet = FleetMetrics(client, toggle_store(settings), settings.task_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await client()
        except Exception as e:
            log.warning("Temporal not reachable at start-up (%s); will retry per request", e)
        yield
        await fleet.close()

    app = GatewayApp(
        title="stanch gateway",
        version="0.1.0",
        description="Alert intake and on-call API for stanch.",
        lifespan=lifespan,
    )

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        if request.url.path == "/alerts":
            REFUSED.labels(str(exc.status)).inc()
        body: dict[str, Any] = {"error": exc.error, "message": exc.message}
        if exc.problems:
            body["problems"] = exc.problems
        headers = {"Retry-After": "10"} if exc.status == 503 else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(DatabaseUnavailable)
    async def _store_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        # The fleet's shared store (STANCH_DATABASE_URL) is down. An alert may
        # have reached its incident but not the trail: 503 is a status Azure
        # retries, and the retry joins the same incident and is recorded once.
        if request.url.path == "/alerts":
            REFUSED.labels("503").inc()
        log.error("%s %s: shared store unavailable: %s", request.method, request.url.path, exc)
        body = {"error": "unavailable", "message": "the shared store is unavailable; retry later"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "10"})

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> Response:
        # Starlette's own 500 (it logs the traceback), counted: an alert lost
        # to a bug is a refusal too, and the 5xx rate is what on-call watches.
        if request.url.path == "/alerts":
            REFUSED.labels("500").inc()
        return PlainTextResponse("Internal Server Error", status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer repeats the whole input: 5 MB in, 5 MB out.
        problems = [describe_request_error(e) for e in exc.errors()[:20]]
        return JSONResponse(
            {
                "error": "invalid",
                "message": problems[0] if problems else "invalid request",
                "problems": problems,
            },
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if isinstance(exc.__cause__, RecursionError):
            return JSONResponse(
                {"error": "malformed", "message": "body nested too deeply"}, status_code=400
            )
        return await http_exception_handler(request, exc)

    @app.post("/alerts", status_code=202, response_model=IntakeResult)
    async def receive_alert(request: Request) -> IntakeResult:
        """Azure Monitor action-group webhook (common alert schema)."""
        # Served by answer_alert (gateway/alert_path.py); this route documents
        # /alerts in the OpenAPI document and answers the same way.
        return await accept_alert(request)

    async def answer_alert(request: Request) -> Response | Accepted:
        """POST /alerts without FastAPI's request handling: the 202 body is the
        IntakeResult as the route's response model wrote it."""
        try:
            result = await accept_alert(request)
        except Problem as e:
            return await _problem(request, e)
        except DatabaseUnavailable as e:
            return await _store_down(request, e)
        return Accepted(result.model_dump_json().encode())

    app.answer_alerts(answer_alert, _crashed)

    async def accept_alert(request: Request) -> IntakeResult:
        await authenticate_sender(presented_token(request), token, webhook)
        alert = parse_alert(await read_limited(request))
        if not traced:
            return await _record(alert)
        with tracer.start_as_current_span(
            "POST /alerts",
            attributes={
                "alert.id": alert.essentials.alert_id,
                "alert.rule": alert.essentials.alert_rule,
            },
        ):
            return await _record(alert)

    async def _record(alert: CommonAlert) -> IntakeResult:
        try:
            with INTAKE.time():
                result = await intake.record(alert)
        except (RPCError, RuntimeError, OSError) as e:
            lasting = lasting_refusal(e)
            if lasting is not None:
                status, cause = lasting
                log.error("alert %s refused: %s", alert.essentials.alert_id, cause)
                error = "too_large" if status == 413 else "refused"
                raise Problem(status, error, cause) from None
            # 503 is one of the codes Azure action groups retry.
            log.error(
                "Temporal unavailable, alert %s not recorded: %s", alert.essentials.alert_id, e
            )
            raise Problem(503, "unavailable", "incident engine unavailable; retry later") from None
        essentials = alert.essentials
        ALERTS.labels(str(essentials.monitor_condition)).inc()
        await audit.append(
            # Keyed by instance and condition, so Azure's retries are recorded once.
            f"alert/{essentials.alert_id.lower()}/{essentials.monitor_condition}",
            AuditEntry(
                incident_id=result.incident_id,
                actor=essentials.monitoring_service or "azure-monitor",
                action="alert received",
                target=", ".join(essentials.alert_target_ids),
                outcome=str(essentials.monitor_condition),
                details={
                    "rule": essentials.alert_rule,
                    "alert_id": essentials.alert_id,
                    "severity": str(essentials.severity),
                    "joined": result.deduplicated,
                },
            ),
        )
        return result

    api, oncall = api_router(settings, client, Problem)
    app.include_router(api)
    app.include_router(dashboard_router(settings, oncall))
    app.include_router(controls_router(settings, oncall, audit, Problem))
    app.include_router(codec_router(settings, oncall, problem_answer))
    app.include_router(slack_router(oncall))  # Slack's buttons (docs/chat.md)
    app.include_router(access_router(oncall, Problem))  # emergency access for guests
    app.include_router(communications_router(oncall, Problem))  # status updates, subscriptions
    app.add_middleware(
        RequestGuard,
        authenticate=oncall.who_is,
        refusal=problem_answer,
        own_limit=("/alerts", *CODEC_PATHS),  # each bounds its own body, after its credential
    )
    declare_security(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await fleet.measure()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        try:
            await (await client()).service_client.check_health()
        except Exception as e:
            raise Problem(
                503, "unavailable", f"Temporal not reachable: {type(e).__name__}"
            ) from None
        return {"status": "ok"}

    return app


def secure_webhook(settings: Settings) -> SecureWebhook | None:
    if not (settings.entra_tenant_id and settings.entra_audience):
        return None
    audiences = [a.strip() for a in settings.entra_audience.split(",") if a.strip()]
    return SecureWebhook(settings.entra_tenant_id, audiences, settings.entra_authority)


async def authenticate_sender(
    presented: str | None, token: SecretStr | None, webhook: SecureWebhook | None
) -> None:
    """The shared secret, or an Entra ID token from an action group's secure webhook."""
    if presented and webhook is not None and looks_like_jwt(presented):
        try:
            await webhook.check(presented)
        except TokenRefused as e:
            raise Problem(e.status, e.error, f"Entra ID token refused: {e.message}") from None
        return
    if token is None or not token_matches(presented, token):
        raise Problem(401, "unauthorized", "missing or wrong intake token")


async def read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_ALERT_BYTES:
        raise Problem(413, "too_large", f"body is {declared} bytes; the limit is {MAX_ALERT_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_ALERT_BYTES:
            raise Problem(413, "too_large", f"body exceeds the limit of {MAX_ALERT_BYTES} bytes")
    return bytes(body)


def parse_alert(body: bytes) -> CommonAlert:
    if not body.strip():
        raise Problem(400, "malformed", "empty body: expected a common alert schema JSON object")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Problem(400, "malformed", f"body is not JSON: {e}") from None
    except RecursionError:
        raise Problem(400, "malformed", "body nested too deeply") from None
    if _may_nest_deeply(body) and depth(data) > MAX_ALERT_DEPTH:
        # Parsed, but deep enough to exhaust the stack later, when the alert
        # is validated or serialised for Temporal.
        raise Problem(
            400, "malformed", f"body nested too deeply (more than {MAX_ALERT_DEPTH} levels)"
        )
    if not isinstance(data, dict):
        raise Problem(422, "invalid_alert", "body must be a JSON object")
    if data.get("schemaId") != "azureMonitorCommonAlertSchema":
        got = data.get("schemaId")
        raise Problem(
            422,
            "invalid_alert",
            f"schemaId: expected 'azureMonitorCommonAlertSchema', got {got!r} "
            "(enable the common alert schema on the action group)",
        )
    try:
        return CommonAlert.model_validate(data)
    except ValidationError as e:
        problems = describe_validation_error(e)
        raise Problem(422, "invalid_alert", problems[0], problems) from None


def tracing() -> bool:
    """Whether spans go anywhere: with no tracer provider configured (no
    OTEL_EXPORTER_OTLP_ENDPOINT) a span is a no-op that still cost about 4 %
    of the gateway's CPU per alert, so the intake opens none."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _may_nest_deeply(body: bytes) -> bool:
    """Whether walking the parsed body is needed: it cannot nest deeper than it
    has opening brackets (those inside strings only add to the count). A real
    alert has about 15, and counting them costs a fraction of the walk."""
    return body.count(b"{") + body.count(b"[") > MAX_ALERT_DEPTH


def depth(data: Any) -> int:
    """How deeply `data` nests, without recursion (the input chooses the depth).
    Only containers are visited: an alert is mostly scalars, walked once per request."""
    if not isinstance(data, dict | list):
        return 0
    deepest, level = 1, [(data, 1)]
    while level:
        value, d = level.pop()
        deepest = max(deepest, d)
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                level.append((child, d + 1))
    return deepest


def describe_request_error(error: Any) -> str:
    """`body.text: String should have at most 4000 characters (got 'aaaa…')`."""
    where = ".".join(str(part) for part in error.get("loc", ())) or "request"
    said = f"{where}: {error.get('msg', 'invalid')}"
    if error.get("type") == "json_invalid":
        return f"{said} ({error.get('ctx', {}).get('error', 'not JSON')})"
    given = error.get("input")
    if isinstance(given, str | int | float | bool) and error.get("type") != "missing":
        shown = repr(given)
        if len(shown) > EXCERPT_CHARS:
            shown = shown[:EXCERPT_CHARS] + f"… ({len(str(given))} characters)"
        said += f" (got {shown})"
    return said


def problem_answer(error: Exception) -> tuple[int, dict[str, Any]] | None:
    """A refusal raised before any route (the on-call API's credential check)."""
    if not isinstance(error, Problem):
        return None
    return error.status, {"error": error.error, "message": error.message}
