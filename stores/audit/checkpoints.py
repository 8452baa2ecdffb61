"""Signed checkpoints of the audit trail's head, kept outside audit.db.

A keyed chain proves each record follows the one before, but not that the
trail still ends where it did: deleting the last records leaves a shorter chain
that verifies. So every few appends (or seconds) the writer appends a line to
this file: the sequence number and hash of the head, HMAC'd with the audit key.
`stanch audit verify` then knows how long the trail was, and which hash each
anchored record had, whatever happened to the database afterwards.

The file is append-only by use (O_APPEND, never rewritten) and 0600; put it on
other storage than audit.db (`STANCH_AUDIT_CHECKPOINTS`), ideally immutable,
so one stolen disk cannot rewrite both. Each checkpoint also goes to the log,
which usually leaves the machine. The workflows' own receipts in their Temporal
histories are the anchor an attacker with this machine's files cannot reach.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stanch.stores.audit.key import key_id

log = logging.getLogger("stanch.audit")


@dataclass(frozen=True)
class Checkpoint:
    line: int  # 1-based line of the checkpoint file
    seq: int  # the head's sequence number: how many records the trail had
    hash: str  # the head's hash
    keyed_from: int  # the first record of the keyed chain (older ones are unkeyed)
    at: str
    key_id: str
    signed: bool  # its MAC holds under the key it was read with


@dataclass(frozen=True)
class DamagedLine:
    line: int
    text: str


def _mac(key: bytes, seq: int, head: str, keyed_from: int, at: str) -> str:
    message = json.dumps([seq, head, keyed_from, at], separators=(",", ":"))
    return hmac.new(key, b"checkpoint" + message.encode(), hashlib.sha256).hexdigest()


# The rule, for checkpoints kept elsewhere than a file (stores/postgres/audit.py).
checkpoint_mac = _mac


class CheckpointFile:
    def __init__(self, path: Path, key: bytes | None) -> None:
        self.path = path
        self._key = key

    def exists(self) -> bool:
        return self.path.is_file()

    def write(self, seq: int, head: str, keyed_from: int) -> None:
        if self._key is None:
            raise ValueError("a checkpoint needs the audit key")
        at = datetime.now(UTC).isoformat()
        line = {
            "seq": seq,
            "hash": head,
            "keyed_from": keyed_from,
            "at": at,
            "key_id": key_id(self._key),
            "mac": _mac(self._key, seq, head, keyed_from, at),
        }
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # One write of a short line: never interleaved with another writer's.
            # No fsync: the records it vouches for were synced by their commit,
            # and a checkpoint lost in a crash only anchors less, never wrongly.
            os.write(fd, data)
        finally:
            os.close(fd)
        log.info("audit checkpoint: %d records, head %s", seq, head)

    def read(self) -> tuple[list[Checkpoint], list[DamagedLine]]:
        """Every checkpoint, each marked signed or not, and lines that are not
        checkpoints at all (a torn last write, or someone's edit)."""
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return [], []
        found: list[Checkpoint] = []
        damaged: list[DamagedLine] = []
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # torn by a crash mid-write: it never vouched for anything
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                seq, head = int(item["seq"]), str(item["hash"])
                keyed_from, at = int(item["keyed_from"]), str(item["at"])
                mac, kid = str(item["mac"]), str(item.get("key_id", ""))
            except (ValueError, KeyError, TypeError):
                damaged.append(DamagedLine(number, raw[:80]))
                continue
            signed = self._key is not None and hmac.compare_digest(
                mac, _mac(self._key, seq, head, keyed_from, at)
            )
            found.append(Checkpoint(number, seq, head, keyed_from, at, kid, signed))
        return found, damaged

    def last(self) -> Checkpoint | None:
        checkpoints, _ = self.read()
        signed = [c for c in checkpoints if c.signed]
        return signed[-1] if signed else None
