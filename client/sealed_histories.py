"""Can this process read an execution's history at all? Its payloads may be
sealed (client/codec.py) under a payload key the process does not hold: then
nothing can replay it here, and a replay that fails says nothing about the
code. `runbook check` asks this before it replays, and again after a replay
fails, so such an execution is reported as unread, never as broken."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadCodec

from stanch.client.codec import ENCODING, KEY_ID_FIELD, PayloadEncryption


async def unreadable_because(
    history: WorkflowHistory, codec: PayloadCodec | None, *, every_payload: bool = False
) -> str | None:
    """Why `codec` cannot open `history`'s sealed payloads, in the codec's
    words (the key id, and which ids this process holds), or None. By
    default one payload per key id is opened: enough to find a key that is
    not held. `every_payload` opens them all, to find one that does not
    authenticate (sealed by another key under the same id)."""
    sealed: dict[str, list[Payload]] = {}
    for payload in payloads_in(history):
        if payload.metadata.get("encoding") != ENCODING:
            continue  # never sealed: anyone reads it
        key_id = payload.metadata.get(KEY_ID_FIELD, b"").decode(errors="replace")
        kept = sealed.setdefault(key_id, [])
        if every_payload or not kept:
            kept.append(payload)
    # Without keys the client has no codec; stanch's own, holding none, says so.
    opener = codec if codec is not None else PayloadEncryption(None)
    for key_id, payloads in sealed.items():
        try:
            await opener.decode(payloads)
        except Exception as e:  # the codec's errors name the key id; another codec's may not
            said = str(e)
            return said if key_id in said else f"payload under key id {key_id!r}: {said}"
    return None


def payloads_in(history: WorkflowHistory) -> Iterator[Payload]:
    """Every payload anywhere in the history's events (inputs, results,
    failures' encoded attributes, memos, headers)."""
    stack: list[Message] = list(history.events)
    while stack:
        message = stack.pop()
        if isinstance(message, Payload):
            yield message
            continue
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if not field.is_repeated:
                stack.append(value)
                continue
            items: Any = value.values() if field.message_type.GetOptions().map_entry else value
            stack.extend(item for item in items if isinstance(item, Message))
