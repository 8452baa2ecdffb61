"""The chain rule: how each audit record's hash covers the one before it.

Version 1 (keyed): HMAC-SHA256(key, previous hash || canonical {key, record}),
so a record cannot be edited, and the later hashes recomputed, without the key;
the idempotency key is covered too, so a record cannot be passed off as another
append's. Version 0 (unkeyed): SHA-256(previous hash || canonical record), the
rule of trails written before the key; such records still verify by it, but
only up to the first keyed record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
UNKEYED, KEYED = 0, 1


def canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


def unkeyed_hash(previous: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((previous + canonical(record)).encode()).hexdigest()


def keyed_hash(secret: bytes, previous: str, key: str, record: dict[str, Any]) -> str:
    message = previous + canonical({"key": key, "record": record})
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def seal(secret: bytes, previous: str, key: str, record: dict[str, Any]) -> tuple[str, str]:
    """The hash of a record about to be appended after `previous`, by the
    keyed rule, and the record's canonical text to store. Its time, if it has
    none, is now: stamped into `record` before hashing, since the hash covers it.

    The message is keyed_hash's, built around the record's canonical text
    (canonical sorts keys, and "key" < "record") so that text is encoded once
    per append, not once to hash and again to store."""
    record["at"] = record.get("at") or datetime.now(UTC).isoformat()
    text = canonical(record)
    message = f'{previous}{{"key":{json.dumps(key)},"record":{text}}}'
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest(), text


@dataclass(frozen=True)
class AuditRow:
    seq: int
    key: str
    record: dict[str, Any]
    prev_hash: str
    hash: str
    version: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "key": self.key,
            "record": self.record,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "version": self.version,
        }
