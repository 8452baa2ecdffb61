"""The audit trail's HMAC key: what makes a re-chained trail detectable.

Without a key anyone who can write audit.db can edit a record and recompute
every later hash. With one, they also need the key, which never enters the
database. Where it comes from, in order:

1. `STANCH_AUDIT_KEY` (32+ characters): production, from a secret store
   (Key Vault, a Kubernetes secret), so that it never sits on the disk that
   holds audit.db. Every writer (gateway, workers, `stanch toggle`) and the
   auditor running `stanch audit verify` must be given the same value.
2. A key file (`STANCH_AUDIT_KEY_FILE`, by default `audit.key` beside
   audit.db), created 0600 by the first writer of a trail that has no keyed
   records yet. On one machine (`stanch dev`) the gateway, the worker and the
   CLI share the state directory, so they share the key without any set-up.
   A key beside the database stops whoever gets a copy of the database or
   write access to it without the key (a backup, a restored volume, SQL
   access); someone holding the service account's whole disk is stopped by
   the anchors outside it instead (Temporal histories, see checkpoints.py).

A writer never makes a new key for a trail that already holds keyed records:
that would make every record look forged, so a lost key is an error to fix,
not something to paper over.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

MIN_KEY_CHARS = 32


class AuditKeyError(Exception):
    """The key is missing, too short or unreadable; the message says which and where."""


def key_id(key: bytes) -> str:
    """Names a key without revealing it, so a checkpoint can say which key made it."""
    return hmac.new(key, b"stanch audit key id", hashlib.sha256).hexdigest()[:16]


def load_audit_key(secret: str | None, key_file: Path) -> bytes | None:
    """The configured key, or None when neither the setting nor the file exists."""
    if secret is not None:
        return _checked(secret, "STANCH_AUDIT_KEY")
    try:
        text = key_file.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise AuditKeyError(f"audit key file {key_file}: cannot be read ({e})") from None
    _keep_private(key_file)
    return _checked(text, f"audit key file {key_file}")


def create_audit_key(key_file: Path) -> bytes:
    """A new random key in `key_file`, 0600 from its first byte. Writers that
    start together race here: the first link wins and the others read its key."""
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = key_file.with_name(f".{key_file.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(partial, key_file)  # never replaces a key another writer made
    finally:
        partial.unlink(missing_ok=True)
    key = load_audit_key(None, key_file)
    assert key is not None  # it was just linked, by us or by a writer that won the race
    return key


def _checked(text: str, where: str) -> bytes:
    if len(text) < MIN_KEY_CHARS:
        raise AuditKeyError(
            f"{where}: the audit key has {len(text)} characters; it needs at least "
            f"{MIN_KEY_CHARS} (make one: python -c "
            "'import secrets; print(secrets.token_hex(32))')"
        )
    return text.encode()


def _keep_private(path: Path) -> None:
    """A key file others can read is tightened, not refused: refusing would stop
    the incident engine over a mode bit."""
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
