"""The seal builds the keyed rule's message around the record's canonical text
(encoded once per append): it must hash exactly what `stanch audit verify`
recomputes, for any record and key."""

from __future__ import annotations

import pytest

from stanch.stores.audit.chain import GENESIS, canonical, keyed_hash, seal

SECRET = b"k" * 32


@pytest.mark.parametrize(
    ("key", "record"),
    [
        ("alert/x/Fired", {"action": "alert received", "details": {"joined": True, "n": 3}}),
        ('quote"and\\slash', {"zeta": None, "alpha": [1, 2.5, {"b": 1, "a": 2}]}),
        ("incident/é/☃", {"outcome": "réglé ✓", "at": "2026-12-01T00:00:00+00:00"}),
        ("key", {"key": "a record with its own key and record", "record": {}}),
    ],
)
def test_the_seal_is_the_keyed_rule(key, record):
    digest, text = seal(SECRET, GENESIS, key, record)
    assert text == canonical(record)
    assert digest == keyed_hash(SECRET, GENESIS, key, record)
    assert digest != keyed_hash(b"other" * 8, GENESIS, key, record)


def test_the_seal_stamps_the_time_it_hashes():
    record: dict[str, object] = {"action": "note"}
    digest, text = seal(SECRET, GENESIS, "k", record)
    assert '"at":"' in text and record["at"]
    assert digest == keyed_hash(SECRET, GENESIS, "k", record)
