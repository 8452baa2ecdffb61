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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from stanch.client.ids import incident_id_of
from stanch.models.redaction import redact as redact
from stanch.models.redaction import redact_environment_secrets as redact_environment_secrets
from stanch.models.redaction import register_secrets as register_secrets

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
            incident_id = incident_id_of(workflow_id)
            if incident_id is not None:
                line["incident_id"] = incident_id
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
# The rules (redact, register_secrets) live in models/redaction.py, shared with
# the audit trail's scrubbing, which must not depend on logging's set-up; they
# are re-exported above for the processes that configure logging.


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
    from stanch.client.connection import trace_temporal

    trace_temporal(on)


def enable_azure_tracing(on: bool = True) -> None:
    """azure-core opens a span around every HTTP call its clients make."""
    from azure.core.settings import settings

    settings.tracing_implementation = "opentelemetry" if on else None
