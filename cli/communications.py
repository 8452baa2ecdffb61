"""`stanch update ID TEXT [--internal NOTE]` and `stanch subscribe`: status
updates and subscriptions through the on-call API, with the caller's
credential. A refusal (not the communications lead, not allowed to
subscribe, a bad address) exits 2 in the API's words, and nothing is sent."""

from __future__ import annotations

import argparse
from typing import Any

from stanch.cli.api_client import OnCallApi, incident_path
from stanch.cli.errors import UsageError
from stanch.models.communications import Subscriber
from stanch.models.severity import Severity
from stanch.models.status_updates import CommsView, StatusUpdate


def add_parsers(sub: Any, people: list[argparse.ArgumentParser]) -> None:
    update = sub.add_parser(
        "update", parents=people, help="post a status update to the incident's stakeholders"
    )
    update.add_argument("id")
    update.add_argument("text", help="what stakeholders read (email, webhook, timeline)")
    update.add_argument("--internal", help="a note for the timeline only, never sent")
    update.add_argument("--json", action="store_true")
    subscribe = sub.add_parser(
        "subscribe", parents=people, help="subscribe an address to status updates"
    )
    scope = subscribe.add_mutually_exclusive_group(required=True)
    scope.add_argument("--service", help="every incident of this service")
    scope.add_argument("--severity", help="every incident of this severity (sev0..sev4)")
    scope.add_argument("--incident", metavar="ID", help="this one incident")
    subscribe.add_argument("--channel", required=True, help="email:ADDRESS or webhook:URL (https)")


async def run_communications(api: OnCallApi, args: argparse.Namespace) -> int:
    if args.command == "update":
        body = {"text": args.text, "internal": args.internal}
        posted = StatusUpdate.model_validate(
            await api.post(incident_path(args.id, "updates"), body)
        )
        if args.json:
            print(posted.model_dump_json(indent=2))
        else:
            print(f"update {posted.number} posted to {args.id}'s subscribers ({posted.id})")
        return 0
    try:
        shown = Subscriber.parse(args.channel).shown
    except ValueError as e:
        raise UsageError(f"--{e}") from None
    if args.incident:
        view = CommsView.model_validate(
            await api.post(incident_path(args.incident, "subscribers"), {"channel": args.channel})
        )
        print(f"{shown} is subscribed to {view.incident_id}")
        return 0
    standing: dict[str, Any] = {"channel": args.channel}
    if args.service:
        standing["service"] = args.service
    else:
        try:
            standing["severity"] = str(Severity.parse(args.severity))
        except ValueError as e:
            raise UsageError(f"--severity: {e}") from None
    found = await api.post("/api/subscriptions", standing)
    print(f"{shown} is subscribed to every incident of {found['scope']}")
    return 0
