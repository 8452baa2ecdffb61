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
from pathlib import Path
from typing import Any

from cli import incidents
from cli.errors import Unavailable, UsageError
from models.config import ConfigError, load_config
from models.settings import Settings, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stanch", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".stanch"),
        help="where a running `stanch dev` keeps its env file (default .stanch)",
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

    sim = sub.add_parser("sim", parents=[common], help="run azuresim, the Azure simulator")
    sim.add_argument("--port", type=int, default=8443)
    sim.add_argument(
        "--world", type=Path, default=None, help="world file (default examples/world.yaml)"
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

    for name, text in (("ack", "acknowledge: stops paging"), ("resolve", "resolve by hand")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.add_argument("--as", dest="by", required=True, metavar="USER")
        p.add_argument("--note")
        p.add_argument("--json", action="store_true")

    role = sub.add_parser("role", parents=[common], help="assign an incident role")
    role.add_argument("id")
    role.add_argument("role", help="incident_commander, tech_lead or communications_lead")
    role.add_argument("assignee")
    role.add_argument("--as", dest="by", required=True, metavar="USER")

    note = sub.add_parser("note", parents=[common], help="add a note to the timeline")
    note.add_argument("id")
    note.add_argument("text")
    note.add_argument("--as", dest="by", required=True, metavar="USER")

    for name, text in (("approve", "approve a runbook step"), ("reject", "reject a runbook step")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.add_argument("step")
        p.add_argument("--as", dest="by", required=True, metavar="USER")
        p.add_argument("--comment")

    release = sub.add_parser(
        "release", parents=[common], help="undo what automation applied (needs approval)"
    )
    release.add_argument("id")
    release.add_argument("--as", dest="by", required=True, metavar="USER")
    release.add_argument("--reason")

    toggle = sub.add_parser(
        "toggle",
        parents=[common],
        help="the remediation kill switch: stanch toggle remediation off",
    )
    toggle.add_argument("switch", choices=["remediation", "log-level"])
    toggle.add_argument("state", help="on|off for remediation; debug|info|warning|error")
    toggle.add_argument("--runbook", help="only this runbook (default: all automation)")
    toggle.add_argument("--as", dest="by", required=True, metavar="USER")
    toggle.add_argument("--reason")

    runbook = sub.add_parser("runbook", parents=[common], help="runbooks").add_subparsers(
        dest="runbook_command", required=True
    )
    rb_list = runbook.add_parser("list", parents=[common], help="the runbooks this install has")
    rb_list.add_argument("--json", action="store_true")
    rb_new = runbook.add_parser("new", parents=[common], help="scaffold a runbook and its test")
    rb_new.add_argument("name")

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
    audit.add_parser("verify", parents=[common], help="check the hash chain; name any tampering")
    export = audit.add_parser("export", parents=[common], help="write records as JSON Lines")
    export.add_argument("--since", help="ISO date or time (UTC unless it says otherwise)")

    sub.add_parser(
        "demo", parents=[common], help="run the end-to-end demo on a throwaway embedded stack"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = _main(args)
    if args.command in CLIENT_COMMANDS:
        # The Temporal client's Rust threads can call into Python while the
        # interpreter finalizes and abort it ("PyGILState_Release"), turning
        # exit 2 into 134. Nothing is left to clean up: leave without
        # finalizing, after flushing what we printed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


CLIENT_COMMANDS = {
    "drill",
    "postmortem",
    "incidents",
    "show",
    "ack",
    "resolve",
    "role",
    "note",
    "approve",
    "reject",
    "release",
}


SERVICE_COMMANDS = {"dev", "worker", "gateway", "sim"}


def _main(args: argparse.Namespace) -> int:
    if args.command in SERVICE_COMMANDS:
        from telemetry import configure_logging, configure_tracing

        configure_logging()
        configure_tracing(f"stanch-{args.command}")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return run(args)
    except UsageError as e:
        print(f"stanch: {e}", file=sys.stderr)
        return 2
    except Unavailable as e:
        print(f"stanch: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "dev":
        from cli.dev import DevOptions, run_dev

        options = DevOptions(
            state_dir=args.state_dir,
            http_port=args.http_port,
            temporal_port=args.temporal_port,
            ui_port=args.ui_port,
            sim_port=args.sim_port,
            config=args.config,
            world=args.world,
            metrics_port=args.metrics_port,
        )
        asyncio.run(run_dev(options))
        return 0
    if command == "drill":
        from cli.drill import run_drill

        return run_drill(args.scenario, args.json)
    if command == "sim":
        from cli.sim import run_sim

        return run_sim(args.port, args.world, args.state_dir)
    if command == "demo":
        from cli.demo import run_demo

        return run_demo()
    if command == "config":
        return check_config(args.file or load_settings(args.state_dir).config)

    if command == "runbook":
        from cli.runbooks import list_runbooks, new_runbook

        if args.runbook_command == "list":
            list_runbooks(args.json)
        else:
            for path in new_runbook(args.name):
                print(f"created {path}")
        return 0

    settings = load_settings(args.state_dir)
    if command == "audit":
        from cli.audit import export_audit, verify_audit

        if args.audit_command == "verify":
            return verify_audit(settings)
        return export_audit(settings, args.since)
    if command == "toggle":
        return toggle(settings, args)
    if command == "worker":
        from worker import run_worker

        _check_policy(settings.config)
        asyncio.run(_following_log_level(settings, run_worker(settings)))
        return 0
    if command == "gateway":
        from gateway.server import serve_gateway

        if settings.alert_token is None:
            raise UsageError(
                "STANCH_ALERT_TOKEN is not set: the alert intake must be authenticated"
            )
        asyncio.run(_following_log_level(settings, serve_gateway(settings, args.host, args.port)))
        return 0
    if command == "alert":
        from cli.alerts import send_alert

        print(json.dumps(send_alert(settings, args.file), indent=2))
        return 0
    return asyncio.run(_with_client(settings, args))


async def _with_client(settings: Settings, args: argparse.Namespace) -> int:
    from workflows.client import connect

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
            client, incidents.valid_status(args.status), args.severity, args.service, args.all
        )
        incidents.print_incidents(rows, args.json)
        return 0
    if command == "show":
        incidents.print_incident(await incidents.fetch_incident(client, args.id), args.json)
        return 0
    if command == "postmortem":
        from activities.postmortem import render_postmortem

        detail = await incidents.fetch_incident(client, args.id)
        markdown = render_postmortem(detail.view.state, detail.timeline)
        if args.out:
            args.out.write_text(markdown)
            print(f"wrote {args.out}")
        else:
            print(markdown, end="")
        return 0
    requests: dict[str, Callable[[], tuple[str, Any]]] = {
        "ack": lambda: ("acknowledge", incidents.ack_request(args.by, args.note)),
        "resolve": lambda: ("resolve", incidents.resolve_request(args.by, args.note)),
        "role": lambda: ("assign_role", incidents.role_request(args.by, args.role, args.assignee)),
        "note": lambda: ("add_note", incidents.note_request(args.by, args.text)),
    }
    if command in ("approve", "reject"):
        from cli.approvals import decide

        view = await decide(client, args.id, args.step, args.by, command == "approve", args.comment)
        pending = view.pending
        if pending and pending.step == args.step:
            print(
                f"{args.step}: {len(pending.approvals)} of {pending.required} approvals "
                f"({', '.join(pending.approvals)})"
            )
        else:
            print(f"{args.step}: {'approved' if command == 'approve' else 'rejected'} by {args.by}")
        return 0
    if command == "release":
        from cli.approvals import request_release

        result = await request_release(client, args.id, args.by, args.reason)
        print(
            f"incident {result.incident_id}: release requested; it needs an approver other "
            f"than {args.by}: stanch approve {result.incident_id} release --as <approver>"
        )
        return 0
    update, request = requests[command]()
    result = await incidents.send_update(client, args.id, update, request)
    if getattr(args, "json", False):
        print(result.model_dump_json(indent=2))
    else:
        verb = "done" if result.changed else "already so, nothing changed"
        print(f"incident {result.incident_id}: {result.status} ({verb})")
    return 0


async def _following_log_level(settings: Settings, service: Coroutine[Any, Any, None]) -> None:
    from activities.toggles import ToggleStore
    from telemetry import follow_log_level

    follow = asyncio.create_task(follow_log_level(ToggleStore(settings.toggles_path).log_level))
    try:
        await service
    finally:
        follow.cancel()


def toggle(settings: Settings, args: argparse.Namespace) -> int:
    """Flip the kill switch in its store; runbooks read it before every change.
    Or change the log level of every running stanch process, no restart."""
    import uuid

    from activities.audit import SqliteAuditLog
    from activities.toggles import ToggleStore
    from models.runbook import AuditEntry
    from telemetry import LEVELS

    if args.switch == "log-level":
        if args.state not in LEVELS:
            raise UsageError(f"log-level: {args.state!r} is not one of {', '.join(LEVELS)}")
        ToggleStore(settings.toggles_path).set_log_level(args.state, args.by)
        SqliteAuditLog(settings.audit_path).append(
            f"toggle/{uuid.uuid4()}",
            AuditEntry(incident_id=None, actor=args.by, action="set log level", outcome=args.state),
        )
        print(f"log level: {args.state} (running processes pick it up within seconds)")
        return 0
    if args.state not in ("on", "off"):
        raise UsageError(f"remediation: {args.state!r} is not on or off")
    enabled = args.state == "on"
    ToggleStore(settings.toggles_path).set(enabled, args.runbook, args.by, args.reason)
    SqliteAuditLog(settings.audit_path).append(
        f"toggle/{uuid.uuid4()}",
        AuditEntry(
            incident_id=None,
            actor=args.by,
            action="toggle remediation",
            target=args.runbook or "all runbooks",
            outcome=args.state,
            details={"reason": args.reason},
        ),
    )
    scope = f"runbook {args.runbook}" if args.runbook else "all remediation"
    print(f"{scope}: {args.state} (read by every runbook before its next change)")
    return 0


def _check_policy(path: Path) -> None:
    try:
        load_config(path)
    except ConfigError as e:
        raise UsageError("\n".join([f"{e.source}: invalid", *e.problems])) from None


def check_config(path: Path) -> int:
    from runbooks.registry import catalog

    _check_policy(path)
    config = load_config(path)
    problems = config.runbook_problems(set(catalog()))
    if problems:
        raise UsageError("\n".join([f"{path}: invalid", *problems]))
    print(
        f"{path}: ok ({len(config.roster)} people, {len(config.escalation_policies)} "
        f"escalation policies, {len(config.services)} services, {len(config.channels)} channels)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
