"""Forensic capture of a failed VM: incremental snapshots of its disks, its boot
diagnostics (serial log and screenshot), a bounded Network Watcher packet
capture. Each is kept as evidence (an EvidenceRef: its SHA-256 reaches the
audit trail) and is never deleted by stanch: release and undo leave it.

Names are derived from the incident and the disk or VM, so a retried activity
finds what its first attempt made instead of making a second one.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from pydantic import BaseModel, Field

from stanch.models.evidence import EvidenceRef

FORENSICS_TAG = "stanch.forensics"
INCIDENT_TAG = "stanch.incident"
# Azure: snapshot and packet capture names are at most 80 characters of
# letters, digits, `_`, `-` and `.`, starting with a letter or digit.
NAME_LIMIT = 80
# Network Watcher's own bound on a capture (5 hours); stanch never asks for
# an unbounded one.
PACKET_CAPTURE_LIMIT = timedelta(hours=5)
_INCIDENT = re.compile(r"[A-Za-z0-9-]{1,40}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def forensic_name(incident_id: str, subject: str) -> str:
    """`stanch-<incident>-<disk or VM>`, the same on every attempt. A name too
    long for Azure keeps its start and gains a hash of the whole, so two disks
    never share one."""
    name = _UNSAFE.sub("-", f"stanch-{incident_id}-{subject}")
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: NAME_LIMIT - 11]}-{digest}"


def check_incident_id(incident_id: str) -> None:
    """ValueError naming the field: forensic names are built from it."""
    if not _INCIDENT.fullmatch(incident_id):
        raise ValueError(f"incident_id: {incident_id[:80]!r} is not an incident id")


class ForensicsRequest(BaseModel):
    """Snapshot the disks of, or fetch the boot diagnostics of, one VM."""

    incident_id: str
    resource_id: str  # a virtual machine
    # How long the boot diagnostics' SAS URIs live: long enough to download
    # both files, short enough that a leaked log line is soon useless.
    sas_minutes: int = Field(default=10, ge=1, le=1440)


class SnapshotTaken(BaseModel):
    snapshot_id: str
    source_disk_id: str
    disk: str  # "os" or "data lun N"
    incremental: bool
    provisioning_state: str | None = None
    time_created: str | None = None
    reused: bool = False  # True: an earlier attempt made it, this one found it


class DiskSnapshots(EvidenceRef):
    """The manifest of the snapshots taken (kept as evidence: its SHA-256 ties
    the snapshot ids to the incident in the audit chain)."""

    resource_id: str
    snapshots: list[SnapshotTaken] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # disks that cannot be snapshotted, why

    def summary_line(self) -> str:
        taken = ", ".join(s.snapshot_id.rsplit("/", 1)[-1] for s in self.snapshots) or "none"
        skipped = f"; skipped: {'; '.join(self.skipped)}" if self.skipped else ""
        return f"{len(self.snapshots)} snapshot(s): {taken}{skipped}; {super().summary_line()}"


class BootDiagnosticsEvidence(EvidenceRef):
    """The serial log and the screenshot, kept in one bundle with the SHA-256
    of each file as Azure served it."""

    resource_id: str
    serial_log_sha256: str | None = None
    serial_log_size: int | None = None
    screenshot_sha256: str | None = None
    screenshot_size: int | None = None
    reused: bool = False  # True: a retry found the bundle kept and downloaded nothing

    def summary_line(self) -> str:
        if self.reused:
            return f"kept from an earlier attempt; {super().summary_line()}"
        files = [
            f"{what} {size} bytes sha256 {digest}"
            for what, size, digest in (
                ("serial log", self.serial_log_size, self.serial_log_sha256),
                ("screenshot", self.screenshot_size, self.screenshot_sha256),
            )
            if digest is not None
        ]
        return f"{'; '.join(files) or 'no files'}; {super().summary_line()}"


class PacketCaptureRequest(BaseModel):
    """Capture a VM's packets for `duration` into a storage account (from the
    policy: the runbook binding's params)."""

    incident_id: str
    resource_id: str  # a virtual machine
    storage_account_id: str  # Microsoft.Storage/storageAccounts
    duration: timedelta = timedelta(minutes=5)
    total_bytes: int = Field(default=100 * 1024 * 1024, ge=1024, le=4 * 1024**3)

    def checked(self) -> None:
        """ValueError naming the field."""
        check_incident_id(self.incident_id)
        seconds = self.duration.total_seconds()
        if not 1 <= seconds <= PACKET_CAPTURE_LIMIT.total_seconds():
            raise ValueError(
                f"duration: {seconds:g} s; a packet capture runs between 1 s and "
                f"{PACKET_CAPTURE_LIMIT.total_seconds():g} s (Network Watcher's limit)"
            )


class PacketCaptureEvidence(EvidenceRef):
    """Where the capture runs and where its file lands; kept as evidence."""

    capture_id: str
    storage_id: str
    storage_path: str | None = None
    time_limit_seconds: int
    reused: bool = False

    def summary_line(self) -> str:
        where = self.storage_path or self.storage_id
        again = "found running from an earlier attempt; " if self.reused else ""
        return (
            f"{again}capturing for {self.time_limit_seconds} s into {where}; "
            f"{super().summary_line()}"
        )
