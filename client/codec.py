"""Incident data is sealed before it leaves our processes: alerts, timelines,
notes, people's names and evidence references travel through Temporal (a
self-hosted cluster or Temporal Cloud) and sit in its histories, so every
payload a client or worker sends is encrypted with AES-256-GCM, and the
Temporal service stores only ciphertext.

A sealed payload is the whole original payload (its metadata too: what
encoding it had says something), under a fresh 96-bit nonce:

    metadata: encoding = binary/encrypted, encryption-key-id = <id>
    data:     nonce (12 bytes) || ciphertext || tag (16 bytes)

The key id is also the associated data, so a payload cannot be relabelled.

Decoding: a sealed payload with a key id we do not hold, or whose tag does not
verify, is an error naming the id, never passed on as it is. A payload that
was never sealed (an incident started before its workers had a key) is passed
on unchanged, so turning encryption on does not strand running incidents.

Search attributes are not payloads of this codec: they stay plain, so the
service can index them (client/search_attributes.py says what they hold)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from stanch.client.payload_keys import SETTING, PayloadKeys

ENCODING = b"binary/encrypted"
KEY_ID_FIELD = "encryption-key-id"
NONCE_BYTES = 12
TAG_BYTES = 16


class PayloadDecryptionError(Exception):
    """A sealed payload that cannot be opened here; the message names its key id."""


class UnknownPayloadKey(PayloadDecryptionError):
    """Sealed with a key id that is not among ours."""


class PayloadEncryption(PayloadCodec):
    """With no keys, it seals nothing and opens only what was never sealed
    (the gateway's codec endpoint on a stack without keys says so per payload)."""

    def __init__(self, keys: PayloadKeys | None) -> None:
        self._ids = keys.ids if keys else []
        self._ciphers = {key_id: AESGCM(key) for key_id, key in (keys.keys if keys else {}).items()}

    @property
    def active_id(self) -> str | None:
        return self._ids[0] if self._ids else None

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        key_id = self.active_id
        if key_id is None:
            return payload
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_FIELD: key_id.encode()},
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # never sealed
        raw_id = payload.metadata.get(KEY_ID_FIELD)
        if raw_id is None:
            raise PayloadDecryptionError(f"encrypted payload without {KEY_ID_FIELD} metadata")
        key_id = raw_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            held = ", ".join(self._ids) or "none"
            raise UnknownPayloadKey(
                f"payload encrypted with key id {key_id!r}, which is not among this "
                f"process's payload keys ({held}; {SETTING})"
            )
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(f"payload under key id {key_id!r} is truncated")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], raw_id)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} does not authenticate: altered, or "
                "sealed by another key under the same id"
            ) from None
        return Payload.FromString(plain)
