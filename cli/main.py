"""`stanch`: the command line. Exit 0 on success, 2 on bad input (unknown
incident, refused request, invalid file), 1 when the stack is unavailable."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stanch.cli import communications, incidents
from stanch.cli.access import add_access_parser, run_access
from stanch.cli.errors import Unavailable, UsageError
from stanch.client.errors import InvalidQuery, NotFound, Refused
from stanch.client.errors import Unavailable as TemporalUnavailable
from stanch.client.payload_keys import PayloadKeysError
from stanch.models.config import ConfigError
from stanch.models.settings import Settings, SettingsError, load_settings
from stanch.stores.policy import load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stanch", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        # What `stanch dev --state-dir X` prints to export: set once per shell.
        default=Path(os.environ.get("STANCH_STATE_DIR") or ".stanch"),
        help="where a running `stanch dev` keeps its env file "
        "(default $STANCH_STATE_DIR, else .stanch)",
    )
    # `--state-dir` is accepted before or after the command (`stanch dev --state-dir X`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", parents=[common], help="run everything on this machine")
    dev.add_argument("--http-port", type=int, default=8080)
    dev.add_argument("--temporal-port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--sim-port", type=int, default=8443)
    dev.add_argument("--config", type=Path, default=None)
    dev.add_argument("--metrics-port", type=int, default=9464, help="worker Prometheus metrics")
    dev.add_argument("--world", type=Path, default=None, help="azuresim world file")
    dev.add_argument(
        "--reset-sim",
        action="store_true",
        help="azuresim forgets the estate and journal kept in --state-dir",
    )

    sim = sub.add_parser("sim", parents=[common], help="run azuresim, the Azure simulator")
    sim.add_argument("--port", type=int, default=8443)
    sim.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (its certificate names it)"
    )
    sim.add_argument(
        "--world", type=Path, default=None, help="world file (default: the packaged world)"
    )
    sim.add_argument(
        "--reset",
        action="store_true",
        help="forget the estate and journal kept in --state-dir; start from the world",
    )

    sub.add_parser("worker", parents=[common], help="run a worker against STANCH_TEMPORAL_ADDRESS")
    gateway = sub.add_parser("gateway", parents=[common], help="run the HTTP gateway")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=8080)

    alert = sub.add_parser("alert", parents=[common], help="alerts").add_subparsers(
        dest="alert_command", required=True
    )
    send = alert.add_parser(
        "send", parents=[common], help="POST a common-alert-schema JSON file to the gateway"
    )
    send.add_argument("file", type=Path)

    listing = sub.add_parser(
        "incidents", parents=[common], help="list incidents (open ones by default)"
    )
    listing.add_argument("--status")
    listing.add_argument("--severity")
    listing.add_argument("--service")
    listing.add_argument("--all", action="store_true", help="include closed incidents")
    listing.add_argument("--json", action="store_true")

    show = sub.add_parser("show", parents=[common], help="an incident's state and timeline")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")

    # People's commands go through the on-call API with the caller's credential
    # (STANCH_API_TOKEN or `stanch login`); `--as` only in a `stanch dev` stack.
    person = argparse.ArgumentParser(add_help=False)
    person.add_argument(
        "--as",
        dest="by",
        metavar="USER",
        help="act with USER's development credential (only against `stanch dev`)",
    )
    people = [common, person]

    for name, text in (("ack", "acknowledge: stops paging"), ("resolve", "resolve by hand")):
        p = sub.add_parser(name, parents=people, help=text)
        p.add_argument("id")
        p.add_argument("--note")
        p.add_argument("--json", action="store_true")

    role = sub.add_parser("role", parents=people, help="assign an incident role")
    role.add_argument("id")
    role.add_argument("role", help="incident_commander, tech_lead or communications_lead")
    role.add_argument("assignee")

    note = sub.add_parser("note", parents=people, help="add a note to the timeline")
    note.add_argument("id")
    note.add_argument("text")

    communications.add_parsers(sub, people)  # update, subscribe

    for name, text in (("approve", "approve a runbook step"), ("reject", "reject a runbook step")):
        p = sub.add_parser(name, parents=people, help=text)
        p.add_argument("id")
        p.add_argument("step")
        p.add_argument("--comment")

    add_access_parser(sub, common, people)  # stanch access grant | list | revoke
    release = sub.add_parser(
        "release", parents=people, help="undo what automation applied (needs approval)"
    )
    release.add_argument("id")
    release.add_argument("--reason")

    toggle = sub.add_parser(
        "toggle",
        parents=people,
        help="the remediation kill switch: stanch toggle remediation off (admin credential)",
    )
    toggle.add_argument("switch", choices=["remediation", "log-level"])
    toggle.add_argument("state", help="on|off for remediation; debug|info|warning|error")
    toggle.add_argument("--runbook", help="only this runbook (default: all automation)")
    toggle.add_argument("--reason")
    toggle.add_argument(
        "--replace-unreadable",
        action="store_true",
        help="the store is broken: keep it aside and start a fresh one with this change",
    )

    login = sub.add_parser(
        "login",
        parents=[common],
        help="sign in for people's commands (OAuth device authorization grant)",
    )
    login.add_argument("--issuer", help="OIDC issuer (default: the policy's access.oidc)")
    login.add_argument("--client-id", help="public client id (default: access.oidc.client_id)")
    sub.add_parser("logout", parents=[common], help="forget the cached sign-in for this gateway")

    runbook = sub.add_parser("runbook", parents=[common], help="runbooks").add_subparsers(
        dest="runbook_command", required=True
    )
    rb_list = runbook.add_parser(
        "list", parents=[common], help="the runbooks this install has, with package and version"
    )
    rb_list.add_argument("--json", action="store_true")
    rb_list.add_argument(
        "--config", type=Path, help="also load this policy's runbook_packages (a stanch.yaml)"
    )
    rb_new = runbook.add_parser(
        "new", parents=[common], help="scaffold a runbook, its tests, in a package of your own"
    )
    rb_new.add_argument("name")
    rb_new.add_argument(
        "--package",
        type=Path,
        help="write a team package in this folder (made if missing; nothing is overwritten)",
    )
    rb_new.add_argument("--module", help="the package's import name (default: from the folder)")
    rb_new.add_argument(
        "--no-record", action="store_true", help="do not record the runbook's first history"
    )
    rb_record = runbook.add_parser(
        "record", parents=[common], help="record one run of a runbook for its replay tests"
    )
    rb_record.add_argument("name")
    rb_record.add_argument("--to", type=Path, required=True, help="folder of the histories")
    rb_record.add_argument("--world", type=Path, help="azuresim world (default: the packaged one)")
    rb_record.add_argument("--resource", help="resource id (default: the first its spec matches)")
    rb_record.add_argument("--params", help="the runbook's params, as a JSON object")

    rb_check = runbook.add_parser(
        "check",
        parents=[common],
        help="replay running and recently closed workflows against this code; "
        "name each it would break (exit 1)",
    )
    rb_check.add_argument(
        "--config", type=Path, help="also load this policy's runbook_packages (a stanch.yaml)"
    )
    rb_check.add_argument(
        "--runbook-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="workflow classes that replace those registered under the same name (repeatable)",
    )
    rb_check.add_argument("--closed-since", default="7d", help="closed ones too, since (7d)")
    rb_check.add_argument(
        "--limit", type=int, default=200, help="executions checked per workflow type (200)"
    )
    rb_check.add_argument("--json", action="store_true")

    config = sub.add_parser("config", parents=[common], help="policy file").add_subparsers(
        dest="config_command", required=True
    )
    check = config.add_parser(
        "check", parents=[common], help="validate a stanch.yaml, naming every problem"
    )
    check.add_argument("file", type=Path, nargs="?")

    drill = sub.add_parser("drill", parents=[common], help="run a drill scenario against azuresim")
    drill.add_argument("scenario", type=Path)
    drill.add_argument("--json", action="store_true")

    postmortem = sub.add_parser("postmortem", parents=[common], help="a blameless postmortem draft")
    postmortem.add_argument("id")
    postmortem.add_argument("--out", type=Path, help="write it here instead of printing it")

    audit = sub.add_parser("audit", parents=[common], help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser(
        "verify", parents=[common], help="check the keyed chain and its anchors; name any tampering"
    )
    receipts = verify.add_mutually_exclusive_group()
    receipts.add_argument(
        "--temporal",
        action="store_true",
        default=None,
        help="cross-check the receipts in workflow histories (default: when Temporal answers)",
    )
    receipts.add_argument("--no-temporal", dest="temporal", action="store_false")
    export = audit.add_parser("export", parents=[common], help="write records as JSON Lines")
    export.add_argument("--since", help="ISO date or time (UTC unless it says otherwise)")

    sub.add_parser(
        "demo", parents=[common], help="run the end-to-end demo on a throwaway embedded stack"
    )

    db = sub.add_parser("db", parents=[common], help="the shared database").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser(
        "upgrade",
        parents=[common],
        help="apply the schema migrations STANCH_DATABASE_URL's database lacks",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = _main(args)
    if args.command in CLIENT_COMMANDS or getattr(args, "runbook_command", None) == "check":
        # The Temporal client's Rust threads can call into Python while the
        # interpreter finalizes and abort it ("PyGILState_Release"), turning
        # exit 2 into 134. Nothing is left to clean up: leave without
        # finalizing, after flushing what we printed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


CLIENT_COMMANDS = {"audit", "drill", "postmortem", "incidents", "show"}
PEOPLE_COMMANDS = {"ack", "resolve", "role", "note", "approve", "reject", "release", "toggle"}
PEOPLE_COMMANDS |= {"access"}  # emergency access for guests (cli/access.py)
PEOPLE_COMMANDS |= {"update", "subscribe"}  # status updates (cli/communications.py)


SERVICE_COMMANDS = {"dev", "worker", "gateway", "sim"}


def _main(args: argparse.Namespace) -> int:
    if args.command in SERVICE_COMMANDS:
        from stanch.telemetry import configure_logging, configure_tracing

        configure_logging()
        configure_tracing(f"stanch-{args.command}")
        os.umask(0o077)  # state they write (audit, evidence, pages) is private from the first byte
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return run(args)
    except (UsageError, Refused, NotFound, InvalidQuery, PayloadKeysError, SettingsError) as e:
        print(f"stanch: {e}", file=sys.stderr)
        return 2
    except ConfigError as e:
        # Found only once a worker builds its activities (two with one name
        # across team packages): invalid configuration all the same.
        print("\n".join([f"stanch: {e.source}: invalid", *e.problems]), file=sys.stderr)
        return 2
    except (Unavailable, TemporalUnavailable) as e:
        print(f"stanch: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "dev":
        from stanch.cli.dev import DevOptions, run_dev

        options = DevOptions(
            state_dir=args.state_dir,
            http_port=args.http_port,
            temporal_port=args.temporal_port,
            ui_port=args.ui_port,
            sim_port=args.sim_port,
            config=args.config,
            world=args.world,
            metrics_port=args.metrics_port,
            reset_sim=args.reset_sim,
        )
        asyncio.run(run_dev(options))
        return 0
    if command == "drill":
        from stanch.cli.drill import run_drill

        return run_drill(args.scenario, args.json)
    if command == "sim":
        from stanch.cli.sim import run_sim

        return run_sim(args.port, args.world, args.state_dir, host=args.host, reset=args.reset)
    if command == "demo":
        from stanch.cli.demo import run_demo

        return run_demo()
    if command == "config":
        return check_config(args.file or _policy_to_check(args.state_dir))

    if command == "runbook" and args.runbook_command == "check":
        from stanch.cli.runbook_check import run_check

        return asyncio.run(
            run_check(
                load_settings(args.state_dir),
                config=args.config,
                modules=args.runbook_module,
                closed_since=args.closed_since,
                limit=args.limit,
                as_json=args.json,
            )
        )
    if command == "runbook":
        from stanch.cli.runbook_list import list_runbooks
        from stanch.cli.runbooks import new_runbook

        if args.runbook_command == "list":
            list_runbooks(args.json, args.config)
        elif args.runbook_command == "record":
            from stanch.cli.runbook_record import record

            return record(args.name, args.to, args.world, args.resource, args.params)
        elif args.package is not None:
            from stanch.cli.runbook_record import record_scaffolded
            from stanch.cli.runbooks import new_team_package

            recorder = None if args.no_record else record_scaffolded
            for path in new_team_package(args.name, args.package, args.module, recorder):
                print(f"created {path}")
        else:
            for path in new_runbook(args.name):
                print(f"created {path}")
        return 0

    settings = load_settings(args.state_dir)
    if command == "db":
        from stanch.cli.db import upgrade_database

        return upgrade_database(settings)
    if command == "audit":
        from stanch.cli.audit import export_audit, verify_audit

        if args.audit_command == "verify":
            return verify_audit(settings, args.temporal)
        return export_audit(settings, args.since)
    if command in PEOPLE_COMMANDS:
        return asyncio.run(_on_call(settings, args))
    if command == "login":
        from stanch.cli.login import run_login

        return run_login(settings, args.issuer, args.client_id)
    if command == "logout":
        from stanch.cli.login import run_logout

        return run_logout(settings)
    if command == "worker":
        from stanch.worker import run_worker

        _check_policy(settings.config)
        _check_database(settings)
        _check_evidence(settings)
        asyncio.run(_following_log_level(settings, run_worker(settings)))
        return 0
    if command == "gateway":
        from stanch.gateway.server import serve_gateway

        if settings.alert_token is None:
            raise UsageError(
                "STANCH_ALERT_TOKEN is not set: the alert intake must be authenticated"
            )
        from stanch.gateway.signing import DecisionSigner, SigningKeyError

        try:
            DecisionSigner.from_settings(settings)
        except SigningKeyError as e:
            raise UsageError(str(e)) from None
        _check_policy(settings.config)
        _check_database(settings)
        asyncio.run(_following_log_level(settings, serve_gateway(settings, args.host, args.port)))
        return 0
    if command == "alert":
        from stanch.cli.alerts import send_alert

        print(json.dumps(send_alert(settings, args.file), indent=2))
        return 0
    return asyncio.run(_with_client(settings, args))


async def _with_client(settings: Settings, args: argparse.Namespace) -> int:
    from stanch.client.connection import connect
    from stanch.client.ids import as_incident_id
    from stanch.client.incidents import fetch_incident

    try:
        client = await connect(settings)
    except Exception as e:
        raise Unavailable(
            f"cannot reach Temporal at {settings.temporal_address}: {e} "
            "(start `stanch dev`, or set STANCH_TEMPORAL_ADDRESS)"
        ) from None
    command = args.command
    if command == "incidents":
        rows = await incidents.list_incidents(
            client,
            incidents.valid_status(args.status),
            incidents.valid_severity(args.severity),
            args.service,
            args.all,
        )
        incidents.print_incidents(rows, args.json)
        return 0
    if command == "show":
        incidents.print_incident(await fetch_incident(client, as_incident_id(args.id)), args.json)
        return 0
    if command == "postmortem":
        from stanch.stores.postmortem import render_postmortem

        detail = await fetch_incident(client, as_incident_id(args.id))
        markdown = render_postmortem(detail.view.state, detail.timeline)
        if args.out:
            args.out.write_text(markdown)
            print(f"wrote {args.out}")
        else:
            print(markdown, end="")
        return 0
    raise AssertionError(f"not a reading command: {command}")


async def _on_call(settings: Settings, args: argparse.Namespace) -> int:
    """A people's command: checked here, then sent to the on-call API with the
    caller's credential; the gateway names the person from the credential."""
    from stanch.cli.api_client import OnCallApi
    from stanch.cli.approvals import ask_release, decide_step
    from stanch.cli.credentials import credential_for
    from stanch.cli.toggles import send_toggle, toggle_call

    command = args.command
    calls: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
        "ack": lambda: incidents.ack_call(args.note),
        "resolve": lambda: incidents.resolve_call(args.note),
        "role": lambda: incidents.role_call(args.role, args.assignee),
        "note": lambda: incidents.note_call(args.text),
        "toggle": lambda: toggle_call(
            args.switch, args.state, args.runbook, args.reason, args.replace_unreadable
        ),
    }
    call = calls[command]() if command in calls else None
    api = OnCallApi(settings.gateway_url, credential_for(settings, args.state_dir, args.by))
    if command == "toggle":
        assert call is not None
        await send_toggle(api, call)
        if args.switch == "log-level":
            print(f"log level: {args.state} (running processes pick it up within seconds)")
        else:
            scope = f"runbook {args.runbook}" if args.runbook else "all remediation"
            print(f"{scope}: {args.state} (read by every runbook before its next change)")
        return 0
    if command in ("approve", "reject"):
        approve = command == "approve"
        view = await decide_step(api, args.id, args.step, approve, args.comment)
        pending = view.pending
        if pending and pending.step == args.step:
            print(
                f"{args.step}: {len(pending.approvals)} of {pending.required} approvals "
                f"({', '.join(pending.approvals)})"
            )
        else:
            print(f"{args.step}: {'approved' if approve else 'rejected'}")
        return 0
    if command == "access":
        return await run_access(api, args)
    if command in ("update", "subscribe"):
        return await communications.run_communications(api, args)
    if command == "release":
        result = await ask_release(api, args.id, args.reason)
        print(
            f"incident {result.incident_id}: release requested; it needs another approver: "
            f"stanch approve {result.incident_id} release"
        )
        return 0
    assert call is not None
    result = await incidents.act(api, args.id, call)
    if getattr(args, "json", False):
        print(result.model_dump_json(indent=2))
    else:
        verb = "done" if result.changed else "already so, nothing changed"
        print(f"incident {result.incident_id}: {result.status} ({verb})")
    return 0


async def _following_log_level(settings: Settings, service: Coroutine[Any, Any, None]) -> None:
    from stanch.stores.select import log_level_follow_seconds, toggle_store
    from stanch.telemetry import follow_log_level

    every = log_level_follow_seconds(settings)
    follow = asyncio.create_task(follow_log_level(toggle_store(settings).log_level, every))
    try:
        await service
    finally:
        follow.cancel()


def _check_policy(path: Path) -> None:
    """Refuse a policy that is invalid, or binds a runbook that is not loaded
    here (an alert meant for it would run the next binding's runbook)."""
    from stanch.client.runbooks import require_loaded_runbooks

    try:
        require_loaded_runbooks(load_config(path), str(path))
    except ConfigError as e:
        raise UsageError("\n".join([f"{path}: invalid", *e.problems])) from None


def _check_database(settings: Settings) -> None:
    """A worker or gateway runs only on a schema it knows (STANCH_DATABASE_URL)."""
    from stanch.stores.postgres.database import DatabaseUnavailable, DatabaseUrlError
    from stanch.stores.postgres.migrations import SchemaMismatch
    from stanch.stores.select import check_database

    try:
        check_database(settings)
    except (DatabaseUrlError, SchemaMismatch) as e:
        raise UsageError(str(e)) from None
    except DatabaseUnavailable as e:
        raise Unavailable(str(e)) from None


def _check_evidence(settings: Settings) -> None:
    """A worker keeps evidence only where its settings name a container (or a folder)."""
    from stanch.stores.evidence import EvidenceSettingError, evidence_store

    try:
        evidence_store(settings)
    except EvidenceSettingError as e:
        raise UsageError(str(e)) from None


def _policy_to_check(state_dir: Path) -> Path:
    """A running stack's policy, else the one `stanch dev` would use here."""
    from stanch.cli.packaged import policy_path

    if (state_dir / "env").is_file():
        return load_settings(state_dir).config
    return policy_path(None)


def check_config(path: Path) -> int:
    """Exit 2 naming every problem by path; warnings (allowed but risky) go to
    stderr and leave the exit code 0. Secrets are resolved from this process's
    environment: run it where the gateway and the worker run."""
    from stanch.models.access import guest_warnings
    from stanch.models.policy_checks import policy_warnings
    from stanch.workflows.scope import scope_warnings

    _check_policy(path)  # the schema, then every binding against the runbooks loaded here
    config = load_config(path)
    # Guests' entries expired or expiring within 14 days: nothing can be granted to them after.
    expiring = guest_warnings(config.guests, datetime.now(UTC))
    for warning in [
        *policy_warnings(config),
        *scope_warnings(config.remediation.scopes),
        *expiring,
    ]:
        print(f"{path}: warning: {warning}", file=sys.stderr)
    print(
        f"{path}: ok ({len(config.roster)} people, {len(config.escalation_policies)} "
        f"escalation policies, {len(config.services)} services, {len(config.channels)} channels)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
