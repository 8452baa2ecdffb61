"""`stanch access grant | list | revoke`: emergency access for guests, through
the on-call API with the caller's credential like every people's command.

A grant waits for approval (`stanch approve ID access-<grant>`; someone other
than the requester for roles that can change things), holds the role for
`--for`, and is revoked at its end, on `stanch access revoke`, or when the
incident closes, whichever comes first.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from stanch.cli.api_client import OnCallApi, incident_path
from stanch.cli.errors import UsageError
from stanch.models.duration import format_duration, parse_duration


def add_access_parser(
    sub: Any, common: argparse.ArgumentParser, people: list[argparse.ArgumentParser]
) -> None:
    access = sub.add_parser(
        "access", parents=[common], help="emergency access for guests and vendors"
    ).add_subparsers(dest="access_command", required=True)
    grant = access.add_parser(
        "grant", parents=people, help="ask that a guest be granted an Azure role for a while"
    )
    grant.add_argument("id")
    grant.add_argument("--to", required=True, metavar="GUEST", help="a guest's id (or object id)")
    grant.add_argument("--role", required=True, help="as access.emergency_roles names it")
    grant.add_argument("--scope", required=True, help="the narrowest ARM id that will do")
    grant.add_argument("--for", dest="duration", required=True, metavar="DURATION", help="e.g. 2h")
    grant.add_argument("--reason")
    listing = access.add_parser(
        "list", parents=people, help="grants of an incident (of every open one without ID)"
    )
    listing.add_argument("id", nargs="?")
    listing.add_argument("--json", action="store_true")
    revoke = access.add_parser("revoke", parents=people, help="end a grant now")
    revoke.add_argument("id")
    revoke.add_argument("grant")
    revoke.add_argument("--reason")


async def run_access(api: OnCallApi, args: argparse.Namespace) -> int:
    if args.access_command == "grant":
        await ask_for_access(
            api, args.id, args.to, args.role, args.scope, args.duration, args.reason
        )
    elif args.access_command == "list":
        path = incident_path(args.id, "access") if args.id else "/api/access"
        print_listing(await api.get(path), args.json)
    else:
        grant_id = args.grant.removeprefix("access-")
        path = incident_path(args.id, "access", grant_id, "revoke")
        ended = await api.post(path, {"reason": args.reason})
        print(f"access {ended['grant_id']}: ending ({ended['guest']} loses {ended['role']} now)")
    return 0


async def ask_for_access(
    api: OnCallApi,
    incident: str,
    guest: str,
    role: str,
    scope: str,
    duration: str,
    reason: str | None,
) -> None:
    try:
        # Text, never a bare number (which the API reads as seconds): a unit is required.
        lasting = parse_duration(duration)
    except ValueError as e:
        raise UsageError(f"--for: {e}") from None
    body = {
        "guest": guest,
        "role": role,
        "scope": scope,
        "duration": duration,
        "reason": reason,
    }
    grant = await api.post(incident_path(incident, "access"), body)
    gate = f"access-{grant['grant_id']}"
    print(
        f"access {grant['grant_id']} requested: {grant['role']} on {grant['scope']} for "
        f"{grant['guest']}, {format_duration(lasting)} once granted\n"
        f"it waits for approval (someone other than you for roles that can change things):\n"
        f"  stanch approve {incident} {gate}\n"
        f"revoke it sooner: stanch access revoke {incident} {grant['grant_id']}"
    )


def print_listing(listing: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    rows = [(i["incident_id"], g) for i in listing["incidents"] for g in i["grants"]]
    if not rows:
        print("no access grants")
    else:
        print(
            f"{'INCIDENT':<22} {'GRANT':<13} {'STATUS':<9} {'GUEST':<18} {'ROLE':<24} "
            f"{'UNTIL':<20} APPROVED BY / SCOPE"
        )
    for incident, g in rows:
        until = (g.get("revoked_at") or g.get("expires_at") or "-")[:19].replace("T", " ")
        approved = ", ".join(g.get("approved_by") or []) or "-"
        print(
            f"{incident:<22} {g['grant_id']:<13} {g['status']:<9} {g['guest'][:18]:<18} "
            f"{g['role'][:24]:<24} {until:<20} {approved}\n{'':<46}{g['scope']}"
        )
        if g["status"] == "requested" and (g.get("view") or {}).get("pending"):
            print(f"{'':<46}waiting: stanch approve {incident} access-{g['grant_id']}")
    guests = listing.get("guests") or []
    if guests:
        print("guests and their support contracts:")
    for guest in guests:
        support = guest.get("support") or {}
        contract = (
            f"{support['hours']}, answers within "
            f"{format_duration(parse_duration(support['response_time']))}"
            + (f" ({support['reference']})" if support.get("reference") else "")
            if support
            else "no support contract listed"
        )
        print(
            f"  {guest['id']}: {guest['name']}, {guest['organisation']} <{guest['contact']}>; "
            f"{contract}; entry expires {guest['expires']}"
        )
