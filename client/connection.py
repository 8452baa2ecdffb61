"""One way to reach Temporal, shared by the worker, the gateway and the CLI, so
TLS, API keys and the pydantic data converter are set the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Plugin
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from stanch.models.settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    """mTLS when a client certificate is set (self-hosted clusters, Temporal
    Cloud with certificates); plain server TLS with an API key (Temporal Cloud)."""
    if settings.temporal_tls_cert or settings.temporal_tls_key:
        if not (settings.temporal_tls_cert and settings.temporal_tls_key):
            raise ValueError("STANCH_TEMPORAL_TLS_CERT and STANCH_TEMPORAL_TLS_KEY go together")
        return TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
            server_root_ca_cert=(
                settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None
            ),
        )
    if settings.temporal_tls_ca:
        return TLSConfig(server_root_ca_cert=settings.temporal_tls_ca.read_bytes())
    return settings.temporal_tls or settings.temporal_api_key is not None


async def connect(settings: Settings, plugins: Sequence[Plugin] | None = None) -> Client:
    """When the process traces (an OpenTelemetry SDK tracer provider is set, see
    telemetry.py), Temporal's OpenTelemetryPlugin is added: it traces every call
    and carries the trace into workflows and activities."""
    runtime = _runtime(settings.metrics_address)
    if plugins is None:
        plugins = [OpenTelemetryPlugin(add_temporal_spans=True)] if _tracing() else []
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=(
            settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
        ),
        data_converter=pydantic_data_converter,
        plugins=list(plugins),
        runtime=runtime,
    )


_TRACING = {"on": False}


def trace_temporal(on: bool) -> None:
    """Called by telemetry.configure_tracing: from then on every client this
    process connects carries traces into workflows and activities."""
    _TRACING["on"] = on


def _tracing() -> bool:
    return _TRACING["on"]


_RUNTIMES: dict[str, Runtime] = {}


def _runtime(metrics_address: str | None) -> Runtime | None:
    """One runtime per metrics address per process: it owns the Prometheus
    endpoint, which serves the SDK's metrics and those workflows and
    activities record through their metric meters."""
    if not metrics_address:
        return None
    if metrics_address not in _RUNTIMES:
        _RUNTIMES[metrics_address] = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics_address))
        )
    return _RUNTIMES[metrics_address]
