"""azuresim's estate on disk, so a restart with the same state directory carries
on where it stopped (the review found `stanch dev`'s simulator forgot the tags
a runbook had applied, and the journal of what it did, on every restart).

Next to the CA (`azuresim-ca.pem`) in the state directory:

- `azuresim-estate.json`: resources, locks, operations and the world's tables
  and metrics, rewritten atomically (a temporary file renamed over it) after
  every change: a reader or a crash sees the old estate or the new, never half.
- `azuresim-journal.jsonl`: one line per call received, appended; a clear
  rewrites it atomically with a marker that keeps `seq` counting on.
- `azuresim-ca-key.pem`: the CA's key, so a simulator that restarts serves a
  certificate the clients already trust.

Every file is 0600 from its first byte. A file that cannot be read back is a
`CorruptEstate`, naming it and the way out (`--reset`), never silently dropped.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import trustme

ESTATE = "azuresim-estate.json"
JOURNAL = "azuresim-journal.jsonl"
CA_CERT = "azuresim-ca.pem"
CA_KEY = "azuresim-ca-key.pem"
RESET_HINT = "start it with --reset (stanch sim --reset, stanch dev --reset-sim) to begin anew"


class CorruptEstate(Exception):
    """A saved file azuresim cannot read back."""


class EstateFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.estate = directory / ESTATE
        self.journal = directory / JOURNAL
        self.ca_cert = directory / CA_CERT
        self.ca_key = directory / CA_KEY

    # ---- the estate --------------------------------------------------------------

    def load_estate(self) -> dict[str, Any] | None:
        """The saved estate, or None when there is none yet."""
        try:
            text = self.estate.read_text()
        except FileNotFoundError:
            return None
        try:
            saved = json.loads(text)
        except ValueError as e:
            raise CorruptEstate(f"{self.estate}: not JSON ({e}); {RESET_HINT}") from None
        if not isinstance(saved, dict):
            raise CorruptEstate(f"{self.estate}: not a saved estate; {RESET_HINT}")
        return saved

    def save_estate(self, saved: dict[str, Any]) -> None:
        _write_atomically(self.estate, json.dumps(saved, separators=(",", ":")))

    # ---- the journal -------------------------------------------------------------

    def load_journal(self) -> tuple[list[dict[str, Any]], int]:
        """The calls kept, and the last `seq` handed out (a clear keeps it)."""
        try:
            lines = self.journal.read_text().splitlines()
        except FileNotFoundError:
            return [], 0
        calls: list[dict[str, Any]] = []
        last = 0
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                last = max(last, int(entry["seq"]))
            except (ValueError, KeyError, TypeError) as e:
                raise CorruptEstate(
                    f"{self.journal}, line {number}: not a journal entry ({e}); {RESET_HINT}"
                ) from None
            if not entry.get("cleared"):
                calls.append(entry)
        return calls, last

    def append_call(self, call: dict[str, Any]) -> None:
        line = (json.dumps(call, separators=(",", ":"), default=str) + "\n").encode()
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)  # one write of a whole line: lines never interleave
        finally:
            os.close(fd)

    def clear_journal(self, seq: int) -> None:
        _write_atomically(self.journal, json.dumps({"cleared": True, "seq": seq}) + "\n")

    # ---- the CA ------------------------------------------------------------------

    def ca(self) -> trustme.CA:
        """The CA kept here, or a new one (then kept)."""
        if self.ca_cert.exists() and self.ca_key.exists():
            try:
                return trustme.CA.from_pem(self.ca_cert.read_bytes(), self.ca_key.read_bytes())
            except ValueError as e:
                raise CorruptEstate(
                    f"{self.ca_key}: not the key of {self.ca_cert} ({e}); {RESET_HINT}"
                ) from None
        ca = trustme.CA()
        _write_atomically(self.ca_key, ca.private_key_pem.bytes().decode())
        _write_atomically(self.ca_cert, ca.cert_pem.bytes().decode())
        return ca

    def forget(self) -> None:
        """What `--reset` does: the estate and journal go; the CA stays trusted."""
        self.estate.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
