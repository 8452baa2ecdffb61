"""Structured logs, traces and metrics for every stanch process.

- Logs are JSON lines carrying the incident id, workflow id, run id and trace
  id when there is one; the level can be changed at run time through the
  toggle store (`stanch toggle log-level debug --as you`), no restart.
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
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(
        LEVELS.get((level or os.environ.get("STANCH_LOG_LEVEL", "info")).lower(), logging.INFO)
    )


async def follow_log_level(read_level: Callable[[], str | None], every: float = 5.0) -> None:
    """Apply the toggle store's log level while the process runs."""
    current = None
    while True:
        level = read_level()
        if level and level != current and level in LEVELS:
            logging.getLogger().setLevel(LEVELS[level])
            logging.getLogger("stanch").info("log level is now %s", level)
            current = level
        await asyncio.sleep(every)


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
    from workflows.client import trace_temporal

    trace_temporal(on)


def enable_azure_tracing(on: bool = True) -> None:
    """azure-core opens a span around every HTTP call its clients make."""
    from azure.core.settings import settings

    settings.tracing_implementation = "opentelemetry" if on else None
