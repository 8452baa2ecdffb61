"""One way to reach Temporal, shared by the worker, the gateway and the CLI, so
TLS, API keys and the data converter (pydantic, and payload encryption when
keys are set) are the same everywhere."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from temporalio.client import Client, Plugin
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from stanch.client.codec import PayloadEncryption
from stanch.client.payload_keys import PayloadKeys, read_payload_keys
from stanch.models.settings import Settings

log = logging.getLogger("stanch.encryption")


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
        data_converter=data_converter(settings),
        plugins=list(plugins),
        runtime=runtime,
    )


def payload_keys(settings: Settings) -> PayloadKeys | None:
    """The payload keys of STANCH_PAYLOAD_KEYS_FILE, or None when it is unset."""
    path = settings.payload_keys_file
    return read_payload_keys(path) if path is not None else None


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models as JSON; with payload keys, every payload sealed (and
    failures' messages and stack traces moved into a sealed payload too: an
    activity's error can quote a resource or a person)."""
    keys = payload_keys(settings)
    if keys is None:
        _say_once(
            "payloads to Temporal are NOT encrypted (STANCH_PAYLOAD_KEYS_FILE is unset): "
            "its histories hold incident data in plain text"
        )
        return pydantic_data_converter
    _say_once(
        f"payloads to Temporal are encrypted (AES-256-GCM, key {keys.active_id!r}; "
        f"{len(keys.ids)} key(s) decrypt)"
    )
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=PayloadEncryption(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """Once per process: `stanch dev` connects several clients."""
    if message not in _SAID:
        _SAID.add(message)
        log.info(message)


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
