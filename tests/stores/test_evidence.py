"""The evidence store (stores/evidence.py): a bundle per incident and name,
written whole and once, with the hash the audit trail records. Capturing it
from azuresim is tests/runbooks/test_runbooks.py's quarantine_vm."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from stanch.stores.evidence import EvidenceStore


def test_a_bundle_is_kept_whole_with_its_hash(tmp_path: Path):
    store = EvidenceStore(tmp_path / "evidence")
    assert store.find("inc-1", "vm1.json") is None

    ref = store.keep("inc-1", "vm1.json", {"resource": {"id": "vm1"}, "logs": [1, 2]})

    path = Path(urlsplit(ref.location).path)
    assert path == (tmp_path / "evidence" / "inc-1" / "vm1.json").resolve()
    data = path.read_bytes()
    assert json.loads(data) == {"resource": {"id": "vm1"}, "logs": [1, 2]}
    assert (ref.sha256, ref.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.find("inc-1", "vm1.json") == ref
    assert sorted(p.name for p in path.parent.iterdir()) == ["vm1.json"], "no partial left"


def test_the_first_capture_is_the_one_that_counts(tmp_path: Path):
    """A retried capture would see the resource after the fact: it must not
    replace the bundle the audit trail already holds the hash of."""
    store = EvidenceStore(tmp_path)
    first = store.keep("inc-1", "vm1.json", {"power": "running"})
    again = store.keep("inc-1", "vm1.json", {"power": "deallocated"})
    assert again == first
    assert json.loads(Path(urlsplit(first.location).path).read_text()) == {"power": "running"}


def test_incidents_keep_their_own_bundles(tmp_path: Path):
    store = EvidenceStore(tmp_path)
    one = store.keep("inc-1", "vm1.json", {"seen": 1})
    two = store.keep("inc-2", "vm1.json", {"seen": 2})
    assert one.location != two.location and one.sha256 != two.sha256
