"""The keys that encrypt incident data before it reaches Temporal
(`STANCH_PAYLOAD_KEYS_FILE`): a JSON or YAML mapping of key id to a base64
32-byte AES key. The first key encrypts; every listed key decrypts, so a key
rotates by adding a new one first and removing the old one only once no
history still holds what it sealed.

    {"2026-06": "q3Jv...=", "2025-12": "9fBc...="}

Every worker, gateway and CLI that talks to Temporal needs the same file (a
Kubernetes or Key Vault secret mounted as a file, in production). It is a
secret: a file others can read is tightened to 0600 when read, as the audit
key is. No message here ever holds key material, only ids."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KEY_BYTES = 32  # AES-256
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SETTING = "STANCH_PAYLOAD_KEYS_FILE"
MAKE_ONE = "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"


class PayloadKeysError(Exception):
    """The key file is missing, unreadable or wrong; the message says which key and why."""


@dataclass(frozen=True)
class PayloadKeys:
    """Key id -> key, in the file's order: the first is the one that encrypts."""

    keys: Mapping[str, bytes]

    @property
    def active_id(self) -> str:
        return next(iter(self.keys))

    @property
    def ids(self) -> list[str]:
        return list(self.keys)


def read_payload_keys(path: Path) -> PayloadKeys:
    where = f"{SETTING} {path}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PayloadKeysError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PayloadKeysError(f"{where}: cannot be read ({e})") from None
    _keep_private(path)
    return parse_payload_keys(text, where)


def parse_payload_keys(text: str, where: str) -> PayloadKeys:
    data = _parsed(text, where)
    if not isinstance(data, dict) or not data:
        raise PayloadKeysError(
            f"{where}: expected a mapping of key id to base64 32-byte key, the first one "
            f"encrypting (make a key: {MAKE_ONE})"
        )
    keys: dict[str, bytes] = {}
    for key_id, value in data.items():
        if not isinstance(key_id, str) or not KEY_ID.match(key_id):
            raise PayloadKeysError(
                f"{where}: key id {key_id!r}: up to 64 letters, digits, '.', '_' or '-', "
                "quoted in YAML"
            )
        keys[key_id] = _key(value, f"{where}: key {key_id!r}")
    return PayloadKeys(keys)


def _parsed(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        # The parser's own message quotes the offending line: a key, maybe.
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise PayloadKeysError(f"{where}: neither JSON nor YAML{at}") from None


def _key(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise PayloadKeysError(f"{where}: expected a base64 string")
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PayloadKeysError(f"{where}: not base64 (make one: {MAKE_ONE})") from None
    if len(key) != KEY_BYTES:
        raise PayloadKeysError(
            f"{where}: {len(key)} bytes; AES-256 needs {KEY_BYTES} (make one: {MAKE_ONE})"
        )
    return key


def _keep_private(path: Path) -> None:
    """Tightened, not refused: refusing would stop the incident engine over a mode bit."""
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
