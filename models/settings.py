"""Process settings, from `STANCH_*` environment variables (and `<state-dir>/env`,
which `stanch dev` writes so that commands in another terminal find the stack).
The response plan itself lives in `stanch.yaml`, see models/config.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STANCH_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_api_key: SecretStr | None = None
    task_queue: str = "stanch"
    config: Path = Path("stanch.yaml")
    alert_token: SecretStr | None = None
    # Azure Monitor secure webhooks (Entra ID), beside or instead of alert_token:
    # the tenant, and our app's id and/or identifier URI (comma-separated).
    entra_tenant_id: str | None = None
    entra_audience: str | None = None
    entra_authority: str = "https://login.microsoftonline.com"
    gateway_url: str = "http://127.0.0.1:8080"
    # The CLI's credential for the on-call API (else `stanch login`'s cached sign-in).
    api_token: SecretStr | None = None
    # `stanch login`: the OIDC issuer and public client id of the device flow,
    # when the policy file (access.oidc) is not at hand on the caller's machine.
    login_issuer: str | None = None
    login_client_id: str | None = None
    # Development credentials (one per roster person) the gateway accepts beside
    # the policy's tokens: set by `stanch dev` only, never in production.
    dev_credentials: Path | None = None
    # Alerts for one incident arriving within this many ms (or while a call for it is
    # in flight) go to Temporal as one signal; negative: one signal per alert.
    coalesce_window_ms: float = 0.0
    # Once an incident's calls carry several alerts, its next batch waits at most
    # this long for company (gateway/coalesce.py); 0: never. Costs no latency at low load.
    coalesce_linger_ms: float = 20.0
    azure_subscription_id: str | None = None
    azure_endpoint: str | None = None
    azure_ca_file: Path | None = None
    azure_region: str = "westeurope"  # default regional metrics endpoint
    azure_poll_seconds: float = 5.0  # LRO polling when Azure sends no Retry-After
    web_ui_url: str | None = None
    # Workflows a worker keeps in memory (the SDK's sticky cache). One evicted
    # is replayed from history when it next wakes: an approval to a runbook
    # waiting past the cache costs a replay. ≈ 0.15 MB each, three per incident
    # waiting at a gate (incident, runbook, communications; docs/benchmarks.md).
    worker_cached_workflows: int = Field(default=1000, ge=1)
    # Workflow tasks a worker runs at once (None: the SDK's default, 100). A
    # task the worker has taken waits in its process behind the others; one
    # not yet taken waits in Temporal's queue, which serves a Sev1 incident's
    # task before a Sev4 storm's (task priority).
    worker_workflow_task_slots: int | None = Field(default=None, ge=1)
    # host:port where the worker serves Prometheus metrics (SDK runtime + stanch's own)
    metrics_address: str | None = None
    # Where local stores live unless each is given its own place.
    state_dir: Path = Path(".stanch")
    audit_db: Path | None = None  # append-only, hash-chained audit log (SQLite)
    # The audit chain's HMAC key (32+ characters; every writer and the auditor
    # need the same), or a file holding it; neither set: `audit.key` beside
    # audit.db, made 0600 by the first writer. See stores/audit/key.py.
    audit_key: SecretStr | None = None
    audit_key_file: Path | None = None
    # Signed checkpoints of the audit trail's head, outside audit.db (default:
    # `audit.checkpoints` beside it), every N appends or T seconds.
    audit_checkpoints: Path | None = None
    audit_checkpoint_every: int = Field(default=100, ge=1)
    audit_checkpoint_seconds: float = Field(default=10.0, gt=0)
    toggles_file: Path | None = None  # the remediation kill switch, read at run time
    # PostgreSQL for what a fleet shares (audit chain, toggles, page records):
    # `postgresql://user:password@host:port/db`; unset, the files above. A secret.
    database_url: SecretStr | None = None
    evidence_dir: Path | None = None  # captured evidence, named by incident
    # Evidence in a Blob container instead (`https://<account>.blob.core.windows.net/
    # <container>`), with DefaultAzureCredential, or with this connection string
    # to the account the URL names (a secret). See stores/blob_evidence.py.
    evidence_url: str | None = None
    evidence_connection_string: SecretStr | None = None
    # The gateway's Ed25519 key for signing people's decisions (base64 seed or
    # PEM, or a file holding it). Workers trust its public half as well as the
    # policy's `access.decision_keys`.
    decision_key: SecretStr | None = None
    decision_key_file: Path | None = None
    # Payload encryption (client/codec.py): a private JSON/YAML file of key id ->
    # base64 32-byte AES key, the first one encrypting; unset: plain payloads.
    payload_keys_file: Path | None = None
    # Browser origins (comma-separated) of the Temporal Web UI allowed to call
    # the gateway's /codec endpoint; unset: the origin of web_ui_url.
    codec_cors_origins: str | None = None

    @property
    def audit_path(self) -> Path:
        return self.audit_db or self.state_dir / "audit.db"

    @property
    def toggles_path(self) -> Path:
        return self.toggles_file or self.state_dir / "toggles.json"

    @property
    def postmortem_path(self) -> Path:
        return self.state_dir / "postmortems"

    @property
    def evidence_path(self) -> Path:
        return self.evidence_dir or self.state_dir / "evidence"


class SettingsError(ValueError):
    """A STANCH_* setting the process cannot run with (the CLI exits 2)."""


def load_settings(state_dir: Path | str = ".stanch") -> Settings:
    """Environment first, then `<state-dir>/env` of a running `stanch dev`."""
    env_file = Path(state_dir) / "env"
    if env_file.is_file():
        return settings_with(_env_file=env_file)
    return settings_with()


def settings_with(**given: Any) -> Settings:
    """The environment's settings with `given` over them; SettingsError names
    what is wrong. For commands that set some themselves (`stanch dev`, drills):
    a bad STANCH_* variable still refuses them."""
    try:
        return Settings(**given)
    except ValidationError as e:
        raise SettingsError(_named_problems(e)) from None


def _named_problems(error: ValidationError) -> str:
    """Each bad setting by the variable that holds it. Never its value: it
    may be a secret (a database URL, a token)."""
    problems = [
        f"STANCH_{'_'.join(str(part) for part in problem['loc']).upper()}: {problem['msg']}"
        for problem in error.errors(include_url=False)
    ]
    return "invalid settings: " + "; ".join(problems)
