"""`stanch audit verify | export`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from stanch.cli.audit_receipts import TemporalUnreachable, fetch_receipts
from stanch.cli.errors import Unavailable, UsageError
from stanch.models.settings import Settings
from stanch.stores.audit.chain import KEYED, AuditRow
from stanch.stores.audit.key import AuditKeyError, load_audit_key
from stanch.stores.audit.tampering import Anchor
from stanch.stores.postgres.database import DatabaseUnavailable, DatabaseUrlError
from stanch.stores.postgres.migrations import SchemaMismatch
from stanch.stores.select import AuditSource, audit_source


def verify_audit(settings: Settings, temporal: bool | None = None) -> int:
    """Exit 0 with a summary when the trail is sound; 1 naming the first bad
    record and the kind of tampering when it is not. `temporal`: True, the
    receipts in workflow histories must be cross-checked; False, they are not
    read; None, they are when Temporal answers."""
    source = _source(settings)
    path, checkpoints = source.label, source.checkpoints_label
    rows = source.rows()
    secret = _key(settings, path, keyed=any(r.version == KEYED for r in rows))
    receipts: list[Anchor] = []
    anchored_by = "receipts not cross-checked (--no-temporal)"
    if temporal is not False:
        try:
            scan = asyncio.run(fetch_receipts(settings))
        except TemporalUnreachable as e:
            if temporal:
                raise Unavailable(
                    f"cannot reach Temporal at {e} to cross-check the receipts "
                    "(start the stack, set STANCH_TEMPORAL_ADDRESS, or use --no-temporal)"
                ) from None
            anchored_by = f"receipts not cross-checked: Temporal unreachable at {e}"
        else:
            receipts = scan.receipts
            anchored_by = f"{len(receipts)} receipts in {scan.histories} workflow histories"
    findings = source.findings(secret, receipts)
    count = len(rows)
    if findings:
        first, *rest = findings
        print(f"{path}: {count} records, TAMPERED")
        print(f"  first bad record: {first.seq} ({first.kind}): {first.detail}")
        for finding in rest:
            print(f"  also {finding}")
        return 1
    signed = source.signed_checkpoints(secret)
    print(f"{path}: {count} records, chain intact")
    print(f"  {_chain_summary(rows)}")
    print(f"  anchors agree: {signed} signed checkpoints ({checkpoints}); {anchored_by}")
    return 0


def _source(settings: Settings) -> AuditSource:
    """The file trail, or the fleet's database (STANCH_DATABASE_URL)."""
    try:
        return audit_source(settings)
    except (DatabaseUrlError, SchemaMismatch) as e:
        raise UsageError(str(e)) from None
    except DatabaseUnavailable as e:
        raise Unavailable(str(e)) from None


def _key(settings: Settings, where: str, keyed: bool) -> bytes | None:
    key_file = settings.audit_key_file or settings.audit_path.parent / "audit.key"
    secret = settings.audit_key.get_secret_value() if settings.audit_key else None
    try:
        key = load_audit_key(secret, key_file)
    except AuditKeyError as e:
        raise UsageError(str(e)) from None
    if key is None and keyed:
        raise UsageError(
            f"{where} holds keyed records but there is no audit key: set "
            f"STANCH_AUDIT_KEY or STANCH_AUDIT_KEY_FILE to the writers' key (default {key_file})"
        )
    return key


def _chain_summary(rows: list[AuditRow]) -> str:
    keyed = [r for r in rows if r.version == KEYED]
    if not rows:
        return "empty trail"
    if not keyed:
        return (
            "unkeyed (written before the keyed chain): edits are detected, but not "
            "re-chaining or truncation until a writer of this version appends to it"
        )
    older = len(rows) - len(keyed)
    return "keyed with HMAC-SHA256" + (
        f" (the first {older} records, written before the key, by the old SHA-256 rule)"
        if older
        else ""
    )


def export_audit(settings: Settings, since: str | None) -> int:
    start = _parse_since(since)
    for row in _source(settings).rows():
        at = datetime.fromisoformat(row.record["at"])
        if start is None or at >= start:
            print(json.dumps(row.as_dict(), sort_keys=True))
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
