"""The Azure SDK clients of one worker: created once, shared by every activity.

Production authenticates with `DefaultAzureCredential` (managed identity,
workload identity, a service principal from the environment, or a developer's
`az login`). Setting STANCH_AZURE_ENDPOINT points every client at azuresim (or
another ARM-compatible endpoint) with its CA from STANCH_AZURE_CA_FILE and a
static token, so tests, drills and `stanch dev` run the same production code.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import DefaultAzureCredential
from azure.mgmt.authorization.aio import AuthorizationManagementClient
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.network.aio import NetworkManagementClient
from azure.mgmt.resource.locks.aio import ManagementLockClient
from azure.mgmt.resource.resources.aio import ResourceManagementClient
from azure.mgmt.resourcehealth.aio import ResourceHealthMgmtClient
from azure.mgmt.trafficmanager.aio import TrafficManagerManagementClient
from azure.monitor.query.aio import LogsQueryClient
from azure.monitor.querymetrics.aio import MetricsClient

from stanch.models.settings import Settings

LOGS_ENDPOINT = "https://api.loganalytics.io"


class StaticTokenCredential:
    """For azuresim, which checks that a bearer token is present, not what it is."""

    def __init__(self, token: str = "azuresim") -> None:
        self._token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def get_token_info(self, *scopes: str, **kwargs: Any) -> AccessTokenInfo:
        return AccessTokenInfo(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        pass


class AzureClients:
    def __init__(self, settings: Settings) -> None:
        self.endpoint = settings.azure_endpoint.rstrip("/") if settings.azure_endpoint else None
        self.poll_seconds = settings.azure_poll_seconds
        self.default_region = settings.azure_region
        self.credential: AsyncTokenCredential = (
            StaticTokenCredential() if self.endpoint else DefaultAzureCredential()
        )
        # Temporal owns retries (see azure_errors): azure-core must not stack its own.
        self._options: dict[str, Any] = {"retry_total": 0}
        self._trusting: _TrustingSession | None = (
            _TrustingSession(settings.azure_ca_file) if settings.azure_ca_file else None
        )
        self._mgmt: dict[tuple[type[Any], str], Any] = {}
        self._logs: LogsQueryClient | None = None
        self._metrics: dict[str, MetricsClient] = {}

    def _management(self, kind: type[Any], subscription: str) -> Any:
        key = (kind, subscription.lower())
        if key not in self._mgmt:
            extra = {"base_url": self.endpoint} if self.endpoint else {}
            self._mgmt[key] = kind(self.credential, subscription, **extra, **self._connection())
        return self._mgmt[key]

    def resources(self, subscription: str) -> ResourceManagementClient:
        client: ResourceManagementClient = self._management(ResourceManagementClient, subscription)
        return client

    def locks(self, subscription: str) -> ManagementLockClient:
        client: ManagementLockClient = self._management(ManagementLockClient, subscription)
        return client

    def network(self, subscription: str) -> NetworkManagementClient:
        client: NetworkManagementClient = self._management(NetworkManagementClient, subscription)
        return client

    def compute(self, subscription: str) -> ComputeManagementClient:
        client: ComputeManagementClient = self._management(ComputeManagementClient, subscription)
        return client

    def health(self, subscription: str) -> ResourceHealthMgmtClient:
        client: ResourceHealthMgmtClient = self._management(ResourceHealthMgmtClient, subscription)
        return client

    def authorization(self, subscription: str) -> AuthorizationManagementClient:
        client: AuthorizationManagementClient = self._management(
            AuthorizationManagementClient, subscription
        )
        return client

    def traffic_manager(self, subscription: str) -> TrafficManagerManagementClient:
        client: TrafficManagerManagementClient = self._management(
            TrafficManagerManagementClient, subscription
        )
        return client

    def logs(self) -> LogsQueryClient:
        if self._logs is None:
            endpoint = self.endpoint or LOGS_ENDPOINT
            self._logs = LogsQueryClient(
                self.credential, endpoint=endpoint, audience=LOGS_ENDPOINT, **self._connection()
            )
        return self._logs

    def metrics(self, region: str | None) -> MetricsClient:
        """Metrics are served by a regional endpoint: one client per region."""
        region = (region or self.default_region).replace(" ", "").lower()
        if region not in self._metrics:
            endpoint = self.endpoint or f"https://{region}.metrics.monitor.azure.com"
            self._metrics[region] = MetricsClient(endpoint, self.credential, **self._connection())
        return self._metrics[region]

    @property
    def tls(self) -> ssl.SSLContext | bool:
        """What to trust over https beyond the SDK clients (the SAS URIs Azure
        hands out): azuresim's CA when one is set, else the system's."""
        return self._trusting.context if self._trusting is not None else True

    def _connection(self) -> dict[str, Any]:
        """A new client's options: with a CA of our own (azuresim), a transport
        on the one session that trusts it."""
        if self._trusting is None:
            return dict(self._options)
        return {**self._options, "transport": self._trusting.transport()}

    async def close(self) -> None:
        for client in [*self._mgmt.values(), *self._metrics.values()]:
            await client.close()
        if self._logs is not None:
            await self._logs.close()
        if self._trusting is not None:
            await self._trusting.close()
        await self.credential.close()


class _TrustingSession:
    """One HTTP session, with one TLS context that trusts our CA, for every
    client. Given the CA as `connection_verify`, azure-core builds a new TLS
    context for each request (reading the CA file again), and aiohttp, whose
    pool is keyed by that context, opens a new connection with a full
    handshake for every call: under a storm that was a tenth of the worker's
    CPU (docs/benchmarks.md). Real Azure needs none of this."""

    def __init__(self, ca_file: Path) -> None:
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self._session: aiohttp.ClientSession | None = None

    def transport(self) -> AioHttpTransport:
        # Made on first use, inside the worker's event loop, as aiohttp wants.
        if self._session is None or self._session.closed:
            # As azure-core makes its own: no cookies, the proxy from the
            # environment, and bodies decompressed by azure-core, not aiohttp.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.context),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=True,
                auto_decompress=False,
            )
        return AioHttpTransport(session=self._session, session_owner=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
