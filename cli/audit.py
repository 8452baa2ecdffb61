"""`stanch audit verify | export`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from activities.audit import SqliteAuditLog
from cli.errors import UsageError
from models.settings import Settings


def verify_audit(settings: Settings) -> int:
    """Exit 0 when the chain is intact, 1 (and every problem) when it is not."""
    log = SqliteAuditLog(settings.audit_path)
    problems = log.verify()
    count = len(log.records())
    if problems:
        print(f"{settings.audit_path}: {count} records, TAMPERED")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"{settings.audit_path}: {count} records, chain intact")
    return 0


def export_audit(settings: Settings, since: str | None) -> int:
    start = _parse_since(since)
    for row in SqliteAuditLog(settings.audit_path).records():
        at = datetime.fromisoformat(row["record"]["at"])
        if start is None or at >= start:
            print(json.dumps(row, sort_keys=True))
    return 0


def _parse_since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        parsed = datetime.fromisoformat(since)
    except ValueError:
        raise UsageError(
            f"--since: {since!r} is not an ISO date or time (e.g. 2026-11-28)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
