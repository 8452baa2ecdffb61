"""Forensic capture of a failed VM, kept as evidence before anyone touches it:
incremental snapshots of its managed disks, its boot diagnostics (the serial
console log and a screenshot), and a Network Watcher packet capture bounded
in time. Each result is an EvidenceRef, so the runbook kit writes its SHA-256
to the audit trail and lists it on the incident page.

Nothing here deletes anything, and no undo is registered for it: a release
takes back the quarantine, never the evidence. Snapshots are tagged with the
incident (`stanch.incident`, `stanch.forensics=true`) and named after it and
their disk, so a retry finds what its first attempt made: it reads before it
writes, and a snapshot or capture already there is reused, not made twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from azure.mgmt.compute.models import Snapshot
from azure.mgmt.network.models import PacketCapture
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import CONFLICT, INVALID_REQUEST, azure_call
from stanch.activities.heartbeats import heartbeating, polled
from stanch.models.azure import ResourceId
from stanch.models.evidence import EvidenceRef
from stanch.models.forensics import (
    FORENSICS_TAG,
    INCIDENT_TAG,
    BootDiagnosticsEvidence,
    DiskSnapshots,
    ForensicsRequest,
    PacketCaptureEvidence,
    PacketCaptureRequest,
    SnapshotTaken,
    check_incident_id,
    forensic_name,
)
from stanch.stores.evidence import EvidenceConflict, EvidenceKeeper

# Boot diagnostics files are small (Azure keeps the last MBs of the serial
# log); anything larger is not what was asked for, and would fill the worker.
DOWNLOAD_LIMIT = 32 * 1024 * 1024
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=15)
BOOT_DIAGNOSTICS_UNAVAILABLE = "BootDiagnosticsUnavailable"
NETWORK_WATCHER_MISSING = "NetworkWatcherMissing"


class ForensicsActivities:
    def __init__(self, azure: AzureClients, store: EvidenceKeeper) -> None:
        self._azure = azure
        self._store = store
        # The SAS URIs of boot diagnostics point at Blob Storage: trusted as
        # the Azure clients trust Azure (azuresim's CA in tests and drills).
        self._tls = azure.tls

    # ---- disk snapshots -------------------------------------------------------------

    @activity.defn
    async def snapshot_disks(self, request: ForensicsRequest) -> DiskSnapshots:
        """An incremental snapshot of each managed disk of the VM, in the VM's
        resource group and region, and their manifest kept as evidence."""
        rid = _vm(request.incident_id, request.resource_id)
        vm = await self._read_vm(rid)
        location = str(vm["location"])
        disks, skipped = _managed_disks(vm)
        taken = []
        for role, disk_id in disks:
            taken.append(await self._snapshot(request.incident_id, rid, location, role, disk_id))
        bundle = {
            "incident_id": request.incident_id,
            "captured_at": datetime.now(UTC).isoformat(),
            "resource_id": rid.id,
            "snapshots": [s.model_dump(mode="json") for s in taken],
            "skipped": skipped,
        }
        ref = await self._keep(request.incident_id, f"{rid.name}.disk-snapshots.json", bundle)
        return DiskSnapshots(
            **ref.model_dump(), resource_id=rid.id, snapshots=taken, skipped=skipped
        )

    async def _snapshot(
        self, incident_id: str, vm: ResourceId, location: str, role: str, disk_id: str
    ) -> SnapshotTaken:
        disk = ResourceId.parse(disk_id)
        name = forensic_name(incident_id, disk.name)
        snapshots = self._azure.compute(vm.subscription).snapshots
        where = f"snapshot {name} of {disk.id}"
        found = await self._existing_snapshot(vm, name, where)
        reused = found is not None
        if found is not None:
            source = str(_at(found, "properties", "creationData", "sourceResourceId") or "")
            tags = found.get("tags") or {}
            if source.lower() != disk.id.lower() or tags.get(INCIDENT_TAG) != incident_id:
                raise ApplicationError(
                    f"{where}: a snapshot of that name already exists for "
                    f"{source or 'another source'} (incident {tags.get(INCIDENT_TAG)}); "
                    "it is left as it is",
                    type=CONFLICT,
                    non_retryable=True,
                )
            if _at(found, "properties", "provisioningState") != "Succeeded":
                found = await self._until_created(vm, name, where)
        else:
            body = {
                "location": location,
                "tags": {
                    INCIDENT_TAG: incident_id,
                    FORENSICS_TAG: "true",
                    "stanch.source-disk": disk.name,
                },
                "properties": {
                    "creationData": {"createOption": "Copy", "sourceResourceId": disk.id},
                    # Incremental: only the blocks that changed since the
                    # disk's last snapshot are billed, and it is quick to take.
                    "incremental": True,
                },
            }
            async with azure_call(f"take {where}"):
                poller = await snapshots.begin_create_or_update(
                    vm.resource_group,
                    name,
                    Snapshot(body),
                    polling_interval=self._azure.poll_seconds,
                )
                found = _plain(await polled(poller, name))
        return SnapshotTaken(
            snapshot_id=str(found.get("id") or ""),
            source_disk_id=disk.id,
            disk=role,
            incremental=bool(_at(found, "properties", "incremental")),
            provisioning_state=_at(found, "properties", "provisioningState"),
            time_created=_text(_at(found, "properties", "timeCreated")),
            reused=reused,
        )

    async def _existing_snapshot(
        self, vm: ResourceId, name: str, where: str
    ) -> dict[str, Any] | None:
        snapshots = self._azure.compute(vm.subscription).snapshots
        try:
            async with azure_call(f"read {where}"):
                return _plain(await heartbeating(snapshots.get(vm.resource_group, name), name))
        except ApplicationError as e:
            if e.type == "ResourceNotFound":
                return None
            raise

    async def _until_created(self, vm: ResourceId, name: str, where: str) -> dict[str, Any]:
        """An earlier attempt's snapshot still being made: wait for it."""
        snapshots = self._azure.compute(vm.subscription).snapshots
        while True:
            async with azure_call(f"read {where}"):
                found = _plain(await heartbeating(snapshots.get(vm.resource_group, name), name))
            state = _at(found, "properties", "provisioningState")
            if state == "Succeeded":
                return found
            if state == "Failed":
                raise ApplicationError(f"{where}: Azure reports it Failed", type=CONFLICT)
            activity.heartbeat(name)
            await asyncio.sleep(self._azure.poll_seconds)

    # ---- boot diagnostics -----------------------------------------------------------

    @activity.defn
    async def fetch_boot_diagnostics(self, request: ForensicsRequest) -> BootDiagnosticsEvidence:
        """The serial console log and the screenshot, downloaded through the
        short-lived SAS URIs Azure hands out, kept in one bundle with the
        SHA-256 of each file. A retry that finds the bundle kept downloads
        nothing (a second download would differ: the log grows)."""
        rid = _vm(request.incident_id, request.resource_id)
        name = f"{rid.name}.boot-diagnostics.json"
        kept = await self._find(request.incident_id, name)
        if kept is not None:
            return BootDiagnosticsEvidence(**kept.model_dump(), resource_id=rid.id, reused=True)
        machines = self._azure.compute(rid.subscription).virtual_machines
        try:
            async with azure_call(f"retrieve the boot diagnostics of {rid.id}"):
                uris = _plain(
                    await heartbeating(
                        machines.retrieve_boot_diagnostics_data(
                            rid.resource_group,
                            rid.name,
                            sas_uri_expiration_time_in_minutes=request.sas_minutes,
                        )
                    )
                )
        except ApplicationError as e:
            if e.type == CONFLICT:  # boot diagnostics is off: nothing to fetch, ever
                raise ApplicationError(
                    str(e), type=BOOT_DIAGNOSTICS_UNAVAILABLE, non_retryable=True
                ) from None
            raise
        files: dict[str, Any] = {}
        for key, uri_field in (
            ("serial_log", "serialConsoleLogBlobUri"),
            ("screenshot", "consoleScreenshotBlobUri"),
        ):
            uri = uris.get(uri_field)
            if uri:
                files[key] = await self._download(str(uri), key)
        if not files:
            raise ApplicationError(
                f"{rid.id}: Azure returned no boot diagnostics to download",
                type=BOOT_DIAGNOSTICS_UNAVAILABLE,
                non_retryable=True,
            )
        bundle = {
            "incident_id": request.incident_id,
            "captured_at": datetime.now(UTC).isoformat(),
            "resource_id": rid.id,
            "files": {k: v for k, (v, _) in files.items()},
        }
        ref = await self._keep(request.incident_id, name, bundle)
        serial = files.get("serial_log", (None, b""))[1]
        shot = files.get("screenshot", (None, b""))[1]
        return BootDiagnosticsEvidence(
            **ref.model_dump(),
            resource_id=rid.id,
            serial_log_sha256=hashlib.sha256(serial).hexdigest() if "serial_log" in files else None,
            serial_log_size=len(serial) if "serial_log" in files else None,
            screenshot_sha256=hashlib.sha256(shot).hexdigest() if "screenshot" in files else None,
            screenshot_size=len(shot) if "screenshot" in files else None,
        )

    async def _download(self, uri: str, what: str) -> tuple[dict[str, Any], bytes]:
        """One file through its SAS URI: the entry the bundle keeps, and the
        bytes. The URI's query is its credential: it is never logged or kept."""
        source = uri.split("?", 1)[0]
        try:
            async with (
                aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT) as http,
                http.get(uri, ssl=self._tls) as response,
            ):
                data = await heartbeating(response.content.read(DOWNLOAD_LIMIT + 1))
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ApplicationError(
                f"download the {what} from {source}: {type(e).__name__}",
                type="AzureUnreachable",
            ) from None
        if status != 200:
            # 403: the SAS expired or was refused; a retry asks Azure for new URIs.
            retryable = status in (403, 408, 429) or status >= 500
            raise ApplicationError(
                f"download the {what} from {source}: HTTP {status}",
                type="AzureUnavailable" if retryable else BOOT_DIAGNOSTICS_UNAVAILABLE,
                non_retryable=not retryable,
            )
        if len(data) > DOWNLOAD_LIMIT:
            raise ApplicationError(
                f"the {what} at {source} is larger than {DOWNLOAD_LIMIT} bytes",
                type=INVALID_REQUEST,
                non_retryable=True,
            )
        entry: dict[str, Any] = {
            "source": source,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        try:  # text stays readable; anything else is kept byte for byte
            entry["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            entry["base64"] = base64.b64encode(data).decode()
        return entry, data

    # ---- packet capture -------------------------------------------------------------

    @activity.defn
    async def start_packet_capture(self, request: PacketCaptureRequest) -> PacketCaptureEvidence:
        """A Network Watcher packet capture of the VM, stopped by Azure after
        `duration`, its file written to the policy's storage account. A retry
        finds the capture its first attempt started and keeps that one."""
        try:
            request.checked()
            rid = _vm(request.incident_id, request.resource_id)
            storage = ResourceId.parse(request.storage_account_id)
        except ValueError as e:
            raise ApplicationError(str(e), type=INVALID_REQUEST, non_retryable=True) from None
        if not storage.is_type("Microsoft.Storage/storageAccounts"):
            raise ApplicationError(
                f"storage_account_id: a packet capture is written to a storage account, "
                f"not a {storage.full_type}",
                type=INVALID_REQUEST,
                non_retryable=True,
            )
        vm = await self._read_vm(rid)
        watcher = await self._watcher_for(rid, str(vm["location"]))
        captures = self._azure.network(rid.subscription).packet_captures
        name = forensic_name(request.incident_id, rid.name)
        where = f"packet capture {name} of {rid.id}"
        seconds = int(request.duration.total_seconds())
        try:
            async with azure_call(f"read {where}"):
                found = _plain(
                    await heartbeating(
                        captures.get(watcher.resource_group, watcher.name, name), name
                    )
                )
            reused = True
        except ApplicationError as e:
            if e.type != "ResourceNotFound":
                raise
            body = {
                "properties": {
                    "target": rid.id,
                    "targetType": "AzureVM",
                    # Always bounded: Azure stops the capture at this limit,
                    # even if stanch never comes back to it.
                    "timeLimitInSeconds": seconds,
                    "totalBytesPerSession": request.total_bytes,
                    "storageLocation": {"storageId": storage.id},
                    "filters": [],
                }
            }
            async with azure_call(f"start {where}"):
                poller = await captures.begin_create(
                    watcher.resource_group,
                    watcher.name,
                    name,
                    PacketCapture(body),
                    polling_interval=self._azure.poll_seconds,
                )
                found = _plain(await polled(poller, name))
            reused = False
        target = str(_at(found, "properties", "target") or "")
        if target.lower() != rid.id.lower():
            raise ApplicationError(
                f"{where}: a capture of that name already runs for {target}; left as it is",
                type=CONFLICT,
                non_retryable=True,
            )
        limit = int(_at(found, "properties", "timeLimitInSeconds") or seconds)
        storage_path = _text(_at(found, "properties", "storageLocation", "storagePath"))
        bundle = {
            "incident_id": request.incident_id,
            "captured_at": datetime.now(UTC).isoformat(),
            "resource_id": rid.id,
            "capture_id": found.get("id"),
            "network_watcher": watcher.id,
            "storage_id": storage.id,
            "storage_path": storage_path,
            "time_limit_seconds": limit,
            "total_bytes_per_session": _at(found, "properties", "totalBytesPerSession"),
        }
        ref = await self._keep(request.incident_id, f"{rid.name}.packet-capture.json", bundle)
        return PacketCaptureEvidence(
            **ref.model_dump(),
            capture_id=str(found.get("id") or ""),
            storage_id=storage.id,
            storage_path=storage_path,
            time_limit_seconds=limit,
            reused=reused,
        )

    async def _watcher_for(self, vm: ResourceId, location: str) -> ResourceId:
        """The region's Network Watcher (Azure makes one per region)."""
        watchers = self._azure.network(vm.subscription).network_watchers
        async with azure_call(f"list the network watchers of {vm.subscription}"):
            found = [_plain(w) async for w in watchers.list_all()]
        region = location.replace(" ", "").lower()
        for watcher in found:
            if str(watcher.get("location", "")).replace(" ", "").lower() == region:
                return ResourceId.parse(str(watcher["id"]))
        raise ApplicationError(
            f"no Network Watcher in {location} for {vm.id}: enable Network Watcher in that "
            "region to capture its packets",
            type=NETWORK_WATCHER_MISSING,
            non_retryable=True,
        )

    # ---- shared ---------------------------------------------------------------------

    async def _read_vm(self, rid: ResourceId) -> dict[str, Any]:
        machines = self._azure.compute(rid.subscription).virtual_machines
        async with azure_call(f"read {rid.id}"):
            return _plain(await heartbeating(machines.get(rid.resource_group, rid.name)))

    async def _find(self, incident_id: str, name: str) -> EvidenceRef | None:
        # The stores block (disk, or the Storage SDK's HTTP): off the event loop.
        async with azure_call(f"read evidence {name} of incident {incident_id}"):
            return await heartbeating(asyncio.to_thread(self._store.find, incident_id, name))

    async def _keep(self, incident_id: str, name: str, bundle: dict[str, Any]) -> EvidenceRef:
        try:
            async with azure_call(f"keep evidence {name} of incident {incident_id}"):
                return await heartbeating(
                    asyncio.to_thread(self._store.keep, incident_id, name, bundle)
                )
        except EvidenceConflict as e:
            # Two attempts raced (a worker cut off, not dead): the first kept counts.
            activity.logger.warning("%s; the first capture counts", e)
            return e.kept


def _vm(incident_id: str, resource_id: str) -> ResourceId:
    try:
        check_incident_id(incident_id)
        rid = ResourceId.parse(resource_id)
    except ValueError as e:
        raise ApplicationError(str(e), type=INVALID_REQUEST, non_retryable=True) from None
    if not rid.is_type("Microsoft.Compute/virtualMachines"):
        raise ApplicationError(
            f"resource_id: forensic capture is of virtual machines, not {rid.full_type}",
            type=INVALID_REQUEST,
            non_retryable=True,
        )
    return rid


def _managed_disks(vm: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(role, disk id) of each managed disk, and why any other was skipped."""
    profile = _at(vm, "properties", "storageProfile") or {}
    disks: list[tuple[str, str]] = []
    skipped: list[str] = []
    attached = [("os", profile.get("osDisk") or {})] + [
        (f"data lun {d.get('lun')}", d) for d in profile.get("dataDisks") or []
    ]
    for role, disk in attached:
        if not disk:
            continue
        managed = (disk.get("managedDisk") or {}).get("id")
        if managed:
            disks.append((role, str(managed)))
        else:  # an unmanaged (VHD) or ephemeral disk has no snapshot API
            skipped.append(f"{role} disk {disk.get('name') or '?'}: not a managed disk")
    return disks, skipped


def _plain(model: Any) -> dict[str, Any]:
    """An SDK model (a mapping of Azure's own JSON names) as a plain dict."""
    if isinstance(model, Mapping):
        return {str(k): _plain_value(v) for k, v in model.items()}
    as_dict = getattr(model, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else {}


def _plain_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _plain(value)
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    return value


def _at(data: Mapping[str, Any], *path: str) -> Any:
    current: Any = data
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)
