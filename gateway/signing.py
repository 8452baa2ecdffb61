"""The gateway vouches for each decision it forwards: after it has checked the
caller's credential, it signs what that person asked, for which workflow, with
which credential role (Ed25519). Workflows verify it (workflows/decisions.py),
so a client that reaches Temporal directly cannot act as anyone.

The private key comes from STANCH_DECISION_KEY (base64 of the 32-byte seed, or
PEM) or the file STANCH_DECISION_KEY_FILE; its public half goes into the
policy (`access.decision_keys`), several at once while rotating.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from stanch.models.config import ApiRole
from stanch.models.decision import DecisionProof, key_id_of, signed_bytes
from stanch.models.settings import Settings

Request = TypeVar("Request", bound=BaseModel)


class SigningKeyError(Exception):
    """No usable decision key: the gateway must not start without one."""


def parse_private_key(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError as e:
        raise SigningKeyError(f"decision key: not an Ed25519 private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("decision key: not an Ed25519 private key")
    return key


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The form `access.decision_keys[].public_key` takes: base64 of 32 bytes."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def new_private_key_text() -> str:
    seed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(seed).decode()


def configured_key(settings: Settings) -> Ed25519PrivateKey | None:
    if settings.decision_key is not None:
        return parse_private_key(settings.decision_key.get_secret_value())
    if settings.decision_key_file is not None:
        try:
            return parse_private_key(settings.decision_key_file.read_text())
        except OSError as e:
            raise SigningKeyError(
                f"decision key file {settings.decision_key_file}: {e.strerror}"
            ) from None
    return None


class DecisionSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = public_key_text(key)
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> DecisionSigner:
        key = configured_key(settings)
        if key is None:
            raise SigningKeyError(
                "no decision key: set STANCH_DECISION_KEY or STANCH_DECISION_KEY_FILE "
                "(people's decisions cannot be forwarded unsigned)"
            )
        return cls(key)

    def sign(
        self,
        workflow_id: str,
        action: str,
        request: Request,
        role: ApiRole,
        issued_at: datetime | None = None,
    ) -> Request:
        """`request` with a proof attached: valid for this workflow and action
        only. `issued_at` is for tests whose server clock is skipped ahead."""
        issued_at, nonce = issued_at or datetime.now(UTC), secrets.token_hex(16)
        body = request.model_dump(mode="json")
        message = signed_bytes(workflow_id, action, body, self.key_id, role, issued_at, nonce)
        proof = DecisionProof(
            key_id=self.key_id,
            role=role,
            issued_at=issued_at,
            nonce=nonce,
            signature=base64.b64encode(self._key.sign(message)).decode(),
        )
        return request.model_copy(update={"proof": proof})


def dev_decision_key(state_dir: Path) -> Path:
    """`stanch dev`'s signing key: made once per state dir, in a file created
    0600 from its first byte, and trusted by the dev worker beside it."""
    path = state_dir / "decision.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(new_private_key_text() + "\n")
    return path.resolve()


def own_public_key(settings: Settings) -> dict[str, str]:
    """{key id: public key} of this process's decision key, if it has one: a
    worker beside its gateway (one machine) trusts what that gateway signs."""
    key = configured_key(settings)
    if key is None:
        return {}
    public = public_key_text(key)
    return {key_id_of(public): public}
