"""The audit trail: an append-only, keyed hash chain in SQLite (trail.py), its
chain rule (chain.py), its key (key.py), the signed checkpoints kept outside
the database (checkpoints.py), and the naming of what was done to a trail that
fails to verify (tampering.py). Writers (gateway, worker, CLI) and the auditor
(`stanch audit verify`) all use it from here."""

from stanch.stores.audit.chain import GENESIS, KEYED, UNKEYED, AuditRow, canonical
from stanch.stores.audit.checkpoints import CheckpointFile
from stanch.stores.audit.key import AuditKeyError, load_audit_key
from stanch.stores.audit.scrub import scrub
from stanch.stores.audit.tampering import Anchor, Finding
from stanch.stores.audit.trail import AuditLog, SqliteAuditLog, read_rows, verify_trail

__all__ = [
    "GENESIS",
    "KEYED",
    "UNKEYED",
    "Anchor",
    "AuditKeyError",
    "AuditLog",
    "AuditRow",
    "CheckpointFile",
    "Finding",
    "SqliteAuditLog",
    "canonical",
    "load_audit_key",
    "read_rows",
    "scrub",
    "verify_trail",
]
