"""Structured logs, traces and metrics for every stanch process.

- Logs are JSON lines carrying the incident id, workflow id, run id and trace
  id when there is one; the level can be changed at run time through the
  toggle store (`stanch toggle log-level debug --as you`), no restart.
- No secret in any log line at any level: the HTTP client libraries log each
  request's full URL, and a chat webhook's URL is its credential, so their
  loggers stay at WARNING whatever the level toggle says; and every record is
  redacted on the way in (`?token=` and the like, bearer tokens, chat webhook
  URLs, the values of secret-looking environment variables) in case a message
  of ours or a library's ever carries one.
- Traces: OpenTelemetry spans from `POST /alerts` through the workflows and
  activities down to each Azure HTTP call (Temporal's OpenTelemetryPlugin plus
  azure-core's OpenTelemetry tracing), exported by OTLP when
  OTEL_EXPORTER_OTLP_ENDPOINT is set.

A top-level module like worker.py: it is wiring shared by the worker, the
gateway and the CLI, and fits none of the rooms.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Temporal's workflow and activity loggers attach their context here.
        context = (
            getattr(record, "temporal_workflow", None)
            or getattr(record, "temporal_activity", None)
            or {}
        )
        workflow_id = context.get("workflow_id")
        if workflow_id:
            line["workflow_id"] = workflow_id
            line["run_id"] = context.get("run_id") or context.get("workflow_run_id")
            if workflow_id.startswith("incident-"):
                line["incident_id"] = workflow_id.removeprefix("incident-").split("/")[0]
        if context.get("activity_type"):
            line["activity"] = context["activity_type"]
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = f"{span.trace_id:032x}"
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


# Loggers that print request URLs (httpx: `HTTP Request: POST <url>` at INFO;
# httpcore, hpack and urllib3 at DEBUG): pinned here, never lowered by the toggle.
QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3")


def configure_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    redact_environment_secrets(os.environ)
    install_redaction()
    set_log_level(
        LEVELS.get((level or os.environ.get("STANCH_LOG_LEVEL", "info")).lower(), logging.INFO)
    )


def set_log_level(level: int) -> None:
    """The one place the process's level changes: the quiet loggers stay quiet."""
    logging.getLogger().setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


async def follow_log_level(read_level: Callable[[], str | None], every: float = 5.0) -> None:
    """Apply the toggle store's log level while the process runs."""
    current = None
    while True:
        try:
            level = read_level()
        except Exception as e:  # a broken store must not end the process it tunes
            level = None
            logging.getLogger("stanch").error("cannot read the log level: %s", e)
        if level and level != current and level in LEVELS:
            set_log_level(LEVELS[level])
            logging.getLogger("stanch").info("log level is now %s", level)
            current = level
        await asyncio.sleep(every)


# ---- redaction ----------------------------------------------------------------

_REDACTED = "[redacted]"
_MIN_SECRET = 8  # shorter values would redact ordinary words
_QUERY_SECRET = re.compile(
    r"([?&;](?:token|access_token|id_token|refresh_token|code|sig|signature|"
    r"api[_-]?key|key|secret|client_secret|password)=)[^&\s\"'#]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Chat webhooks whose path is the credential: keep the host, drop the rest.
_CHAT_WEBHOOK = re.compile(
    r"(https?://(?:hooks\.slack\.com|[A-Za-z0-9.-]*webhook\.office\.com|"
    r"(?:discord|discordapp)\.com/api/webhooks|[A-Za-z0-9.-]*\.logic\.azure\.com(?::\d+)?))"
    r"[^\s\"'<>]*",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|WEBHOOK|HOOK|PRIVATE_KEY", re.I)
_known: tuple[str, ...] = ()  # longest first, so a URL goes whole before its path


def register_secrets(values: Iterable[str | None]) -> None:
    """Values that must never be printed (tokens, webhook URLs): redacted from
    every record. A URL's path and query are registered too, since a log line
    may carry only those (`POST /services/T0/B0/xyz`)."""
    global _known
    found = set(_known)
    for value in values:
        if not value or len(value) < _MIN_SECRET:
            continue
        found.add(value)
        if match := re.match(r"^[a-z][a-z0-9+.-]*://[^/?#]*([/?].*)$", value, re.I):
            path = match.group(1)
            if len(path) >= _MIN_SECRET:
                found.add(path)
    _known = tuple(sorted(found, key=len, reverse=True))


def redact_environment_secrets(environ: Mapping[str, str]) -> None:
    """`${SLACK_ONCALL_WEBHOOK}` and STANCH_ALERT_TOKEN reach us as environment."""
    register_secrets(value for name, value in environ.items() if _SECRET_NAME.search(name))


def redact(text: str) -> str:
    text = _QUERY_SECRET.sub(rf"\1{_REDACTED}", text)
    text = _BEARER.sub(rf"\1{_REDACTED}", text)
    text = _CHAT_WEBHOOK.sub(rf"\1/{_REDACTED}", text)
    for secret in _known:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def install_redaction() -> None:
    """Redact each record as it is made, so every handler (ours, uvicorn's, a
    test's) sees the clean text: a filter on one handler would miss the others."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:
            return record  # logging reports the broken format itself
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    redacting_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_record)


def configure_tracing(service: str) -> bool:
    """OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set; returns whether on."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import create_tracer_provider

    provider = create_tracer_provider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    enable_azure_tracing()
    enable_temporal_tracing()
    return True


def enable_temporal_tracing(on: bool = True) -> None:
    from stanch.workflows.client import trace_temporal

    trace_temporal(on)


def enable_azure_tracing(on: bool = True) -> None:
    """azure-core opens a span around every HTTP call its clients make."""
    from azure.core.settings import settings

    settings.tracing_implementation = "opentelemetry" if on else None
