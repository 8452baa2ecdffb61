"""Forensic capture as Azure answers it: disk snapshots, boot diagnostics and
Network Watcher packet captures.

- **Snapshots** (`Microsoft.Compute/snapshots`, the disk RP's api-versions):
  PUT is a long-running operation (202 with `Azure-AsyncOperation` on the
  disk RP's `DiskOperations` route; the snapshot reads `Creating` until the
  world's `operation_seconds` have passed); GET, list by group and by
  subscription. The source must be a disk that exists, in the snapshot's
  region (`createOption: Copy`); a second PUT may change tags, never the source.
- **Boot diagnostics**: `POST .../virtualMachines/{vm}/retrieveBootDiagnosticsData`
  answers two SAS URIs served by azuresim itself (`/_sas/...`, over the same
  TLS), a serial console log (text) and a screenshot (PNG); an expired or
  forged signature is refused with 403 as Blob Storage refuses it. A VM whose
  `diagnosticsProfile.bootDiagnostics.enabled` is false is refused (409).
- **Packet captures** (`networkWatchers/{nw}/packetCaptures/{name}`): PUT is
  a long-running operation (201 `Updating` with `Azure-AsyncOperation` on the
  network RP's operations route) and needs `timeLimitInSeconds` within
  Network Watcher's 1..18000, a target VM and a storage account that exist;
  `queryStatus` says Running until the time limit, then Stopped
  (TimeExceeded); `stop` stops it (Manual). Network watchers are listed per
  subscription and group.

Everything here passes through the server's faults and journal like any route.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import time
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stanch.azuresim.api_versions import check_api_version
from stanch.azuresim.state import ArmError, Operation, Resource, SimState

if TYPE_CHECKING:
    from stanch.azuresim.arm import Request

Answer = tuple[int, Any, dict[str, str]]

SNAPSHOT_TYPE = "Microsoft.Compute/snapshots"
CAPTURE_TYPE = "Microsoft.Network/networkWatchers/packetCaptures"
CAPTURE_LIMIT_SECONDS = 18000
SAS_PREFIX = "/_sas/"
# Signs the SAS URIs this process hands out (a restarted azuresim refuses the
# old ones, as a rotated account key would).
_SAS_KEY = secrets.token_bytes(32)
_INTERNAL = "_azuresim"  # properties azuresim keeps for itself, never answered


@dataclass
class ForensicOperation(Operation):
    """A snapshot or packet capture being created: the resource settles when done."""

    resource_id: str = ""


def route(state: SimState, req: Request) -> Answer | None:
    """The answer for a forensic route, or None when `req` is not one."""
    segs = req.segments
    low = [s.lower() for s in segs]
    _settle(state)
    version = req.query["api-version"]
    # /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/DiskOperations/{id}
    if len(low) == 8 and low[2:5] == ["providers", "microsoft.compute", "locations"]:
        if low[6] == "diskoperations":
            check_api_version("Microsoft.Compute/locations/diskOperations", version)
            return _operation_status(state, req, segs[7])
    if len(low) == 8 and low[2:5] == ["providers", "microsoft.network", "locations"]:
        if low[6] == "operations":
            check_api_version("Microsoft.Network/locations/operations", version)
            return _operation_status(state, req, segs[7])
    if len(low) >= 6 and low[2] == "resourcegroups" and low[4] == "providers":
        namespace, kind, in_group = low[5], low[6:], True
    elif len(low) >= 4 and low[2] == "providers":
        namespace, kind, in_group = low[3], low[4:], False
    else:
        return None
    if namespace == "microsoft.compute" and kind[:1] == ["snapshots"]:
        check_api_version(SNAPSHOT_TYPE, version)
        if len(kind) == 1:
            return _listing(state, req, SNAPSHOT_TYPE, _snapshot_json)
        return _snapshot(state, req) if len(kind) == 2 and in_group else None
    if namespace == "microsoft.compute" and kind[:1] == ["virtualmachines"]:
        if len(kind) == 3 and kind[2] == "retrievebootdiagnosticsdata":
            check_api_version("Microsoft.Compute/virtualMachines", version)
            return _boot_diagnostics(state, req, "/" + "/".join(segs[:8]))
        return None
    if namespace == "microsoft.network" and kind[:1] == ["networkwatchers"]:
        if len(kind) == 1:
            check_api_version("Microsoft.Network/networkWatchers", version)
            return _listing(state, req, "Microsoft.Network/networkWatchers", _public_json)
        if len(kind) >= 3 and kind[2] == "packetcaptures" and in_group:
            check_api_version(CAPTURE_TYPE, version)
            return _packet_capture(state, req, kind)
    return None


# ---- long-running operations --------------------------------------------------------


def _start(state: SimState, resource: Resource) -> ForensicOperation:
    op = ForensicOperation(
        id=str(uuid.uuid4()),
        done_at=time.time() + state.world.operation_seconds,
        resource_id=resource.id,
    )
    state.operations[op.id] = op
    return op


def _settle(state: SimState) -> None:
    """Snapshots and captures whose operation is over are Succeeded."""
    now = time.time()
    for op in list(state.operations.values()):
        if isinstance(op, ForensicOperation) and op.status(now) == "Succeeded":
            resource = state.resources.get(op.resource_id.lower())
            if resource is not None and resource.properties.get("provisioningState") != "Succeeded":
                resource.properties["provisioningState"] = "Succeeded"
                if resource.type.lower() == SNAPSHOT_TYPE.lower():
                    resource.properties["completionPercent"] = 100.0


def _operation_status(state: SimState, req: Request, op_id: str) -> Answer:
    op = state.operations.get(op_id)
    if not isinstance(op, ForensicOperation):
        raise ArmError(404, "NotFound", f"operation {op_id} not found")
    if req.method != "GET":
        raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")
    status = op.status(time.time())
    body: dict[str, Any] = {"name": op.id, "status": status, "startTime": _iso(op.started)}
    if status == "Succeeded":
        body["endTime"] = _iso(op.done_at)
    return 200, body, {}


def _status_url(
    req: Request, resource: Resource, namespace: str, route_name: str, op: Operation
) -> str:
    sub = resource.id.split("/")[2]
    return (
        f"{req.base_url}/subscriptions/{sub}/providers/{namespace}/locations/"
        f"{resource.location}/{route_name}/{op.id}?api-version={req.query['api-version']}"
    )


# ---- snapshots ----------------------------------------------------------------------


def _snapshot(state: SimState, req: Request) -> Answer | None:
    snapshot_id = req.path.rstrip("/")
    if req.method == "GET":
        return 200, _snapshot_json(state.get(snapshot_id)), {}
    if req.method != "PUT":
        return None  # DELETE and the rest: a generic resource's
    body = req.body if isinstance(req.body, dict) else {}
    props = body.get("properties") or {}
    creation = props.get("creationData") or {}
    location = body.get("location")
    if not location:
        raise ArmError(
            400, "LocationRequired", "The location property is required for this definition."
        )
    if str(creation.get("createOption", "")).lower() != "copy":
        raise ArmError(
            400,
            "InvalidParameter",
            "azuresim takes snapshots with createOption 'Copy' of a managed disk only.",
        )
    source_id = str(creation.get("sourceResourceId") or "")
    source = state.get(source_id)  # 404 for a disk that is not there
    if source.type.lower() != "microsoft.compute/disks":
        raise ArmError(400, "InvalidParameter", f"'{source_id}' is not a managed disk.")
    if _region(source.location) != _region(location):
        raise ArmError(
            400,
            "InvalidParameter",
            f"The snapshot must be in the disk's region '{source.location}', not '{location}'.",
        )
    existing = state.resources.get(snapshot_id.lower())
    state.check_locks(snapshot_id, "write")
    if existing is not None:
        was = (existing.properties.get("creationData") or {}).get("sourceResourceId", "")
        if was.lower() != source_id.lower():
            raise ArmError(
                409,
                "PropertyChangeNotAllowed",
                "Changing property 'sourceResourceId' is not allowed.",
            )
        existing.tags = dict(body.get("tags") or {})
        return 200, _snapshot_json(existing), {}
    state.require_group_of(snapshot_id)
    properties: dict[str, Any] = {
        "creationData": {
            "createOption": "Copy",
            "sourceResourceId": source.id,
            "sourceUniqueId": source.properties.get("uniqueId")
            or str(uuid.uuid5(uuid.NAMESPACE_URL, source.id.lower())),
        },
        "diskSizeGB": source.properties.get("diskSizeGB", 30),
        "incremental": bool(props.get("incremental", False)),
        "timeCreated": _iso(time.time()),
        "diskState": "Unattached",
        "uniqueId": str(uuid.uuid4()),
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "provisioningState": "Creating",
        **({"osType": source.properties["osType"]} if source.properties.get("osType") else {}),
    }
    if properties["incremental"]:
        properties["completionPercent"] = 0.0
    resource, _ = state.put(snapshot_id, location, dict(body.get("tags") or {}), properties)
    resource.sku = {"name": "Standard_LRS", "tier": "Standard"}
    op = _start(state, resource)
    url = _status_url(req, resource, "Microsoft.Compute", "DiskOperations", op)
    return 202, None, {"Azure-AsyncOperation": url, "Location": url + "&monitor=true"}


def _snapshot_json(resource: Resource) -> dict[str, Any]:
    return _public_json(resource)


# ---- boot diagnostics ---------------------------------------------------------------


def _boot_diagnostics(state: SimState, req: Request, vm_id: str) -> Answer:
    if req.method != "POST":
        raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")
    vm = state.get(vm_id)
    profile = (vm.properties.get("diagnosticsProfile") or {}).get("bootDiagnostics") or {}
    # Managed boot diagnostics is what Azure turns on for new VMs: azuresim's
    # VMs have it unless their world says `enabled: false`.
    if profile.get("enabled") is False:
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Boot diagnostics is not enabled for virtual machine '{vm.name}'.",
        )
    minutes_text = req.query.get("sasuriexpirationtimeinminutes", "120")
    try:
        minutes = int(minutes_text)
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= 1440:
        raise ArmError(
            400,
            "InvalidParameter",
            "The value of parameter 'sasUriExpirationTimeInMinutes' must be between 1 and 1440.",
        )
    expiry = int(time.time()) + minutes * 60
    vm_key = str(vm.properties.get("vmId") or uuid.uuid5(uuid.NAMESPACE_URL, vm.id.lower()))
    container = f"bootdiagnostics-{vm.name[:9].lower()}-{vm_key}"
    return (
        200,
        {
            "consoleScreenshotBlobUri": sas_uri(
                req.base_url, container, f"{vm.name}.{vm_key}.screenshot.png", expiry
            ),
            "serialConsoleLogBlobUri": sas_uri(
                req.base_url, container, f"{vm.name}.{vm_key}.serialconsole.log", expiry
            ),
        },
        {},
    )


def sas_uri(base_url: str, container: str, blob: str, expiry: int) -> str:
    """A read SAS for one blob, valid until `expiry` (a Unix time)."""
    path = f"{SAS_PREFIX}{container}/{blob}"
    query = {"sv": "2022-11-02", "sr": "b", "sp": "r", "se": str(expiry)}
    query["sig"] = _signature(path, expiry)
    return f"{base_url}{urllib.parse.quote(path)}?{urllib.parse.urlencode(query)}"


def _signature(path: str, expiry: int) -> str:
    return hmac.new(_SAS_KEY, f"{path}\n{expiry}".encode(), hashlib.sha256).hexdigest()


def serve_blob(state: SimState, req: Request) -> Answer:
    """A GET of a SAS URI retrieveBootDiagnosticsData handed out: the bytes, or
    Blob Storage's 403 for a signature that is wrong or expired."""
    try:
        expiry = int(req.query.get("se", ""))
    except ValueError:
        expiry = 0
    signature = req.query.get("sig", "")
    if (
        req.method not in ("GET", "HEAD")
        or not hmac.compare_digest(signature, _signature(req.path, expiry))
        or expiry < time.time()
    ):
        return (
            403,
            b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
            b"<Message>Server failed to authenticate the request. Signature not valid or "
            b"expired.</Message></Error>",
            {"Content-Type": "application/xml"},
        )
    blob = req.path.rsplit("/", 1)[-1]
    vm = next(
        (
            r
            for r in state.resources.values()
            if r.type.lower() == "microsoft.compute/virtualmachines"
            and blob.lower().startswith(r.name.lower() + ".")
        ),
        None,
    )
    if vm is None:
        return 404, b"<Error><Code>BlobNotFound</Code></Error>", {"Content-Type": "application/xml"}
    if blob.endswith(".serialconsole.log"):
        return 200, serial_log(vm), {"Content-Type": "text/plain", "x-ms-blob-type": "BlockBlob"}
    return 200, screenshot(vm), {"Content-Type": "image/png", "x-ms-blob-type": "BlockBlob"}


def serial_log(vm: Resource) -> bytes:
    """What the VM's serial console printed: its boot, then its trouble."""
    lines = [
        f"[    0.000000] Linux version 6.8.0-azure (azuresim) {vm.name}",
        "[    1.204411] systemd[1]: Started Journal Service.",
        f"[    4.982001] cloud-init[812]: hostname {vm.name}",
        "[  OK  ] Reached target Multi-User System.",
    ]
    if vm.health != "Available":
        lines.append(f"[ 9000.000001] azuresim: {vm.health}: {vm.health_summary or 'unresponsive'}")
        lines.append("[ 9000.000002] watchdog: BUG: soft lockup - CPU#0 stuck for 23s!")
    return ("\n".join(lines) + "\n").encode()


def screenshot(vm: Resource) -> bytes:
    """A small PNG of the console: red for a VM in trouble, green otherwise."""
    width = height = 16
    colour = b"\xc0\x20\x20" if vm.health != "Available" else b"\x20\xa0\x40"
    raw = b"".join(b"\x00" + colour * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# ---- network watchers and packet captures ----------------------------------------------


def _packet_capture(state: SimState, req: Request, kind: list[str]) -> Answer | None:
    segs = req.segments
    watcher_id = "/" + "/".join(segs[:8])
    watcher = state.get(watcher_id)
    if len(kind) == 3:  # the list
        if req.method != "GET":
            raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")
        prefix = watcher.id.lower() + "/packetcaptures/"
        found = [
            r
            for k, r in state.resources.items()
            if k.startswith(prefix) and k.count("/") == prefix.count("/")
        ]
        return 200, {"value": [_capture_json(r) for r in found]}, {}
    capture_id = "/" + "/".join(segs[:10])
    if len(kind) == 5 and req.method == "POST":
        capture = state.get(capture_id)
        if kind[4] == "querystatus":
            return 200, _capture_status(capture), {}
        if kind[4] == "stop":
            internal = capture.properties.setdefault(_INTERNAL, {})
            if "stopped_at" not in internal and _running(capture):
                internal["stopped_at"] = time.time()
            return 200, None, {}
        raise ArmError(404, "NotFound", f"no packet capture action {kind[4]!r}")
    if len(kind) != 4:
        return None
    if req.method == "GET":
        return 200, _capture_json(state.get(capture_id)), {}
    if req.method == "DELETE":
        return None  # a generic resource's delete
    if req.method != "PUT":
        raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")
    if state.exists(capture_id):
        raise ArmError(
            409,
            "PacketCaptureAlreadyExists",
            f"Packet capture '{segs[9]}' already exists on network watcher '{watcher.name}'.",
        )
    body = req.body if isinstance(req.body, dict) else {}
    props = dict(body.get("properties") or {})
    target = state.get(str(props.get("target") or ""))  # 404 for a VM that is not there
    if _region(target.location) != _region(watcher.location):
        raise ArmError(
            400,
            "InvalidParameter",
            f"Network watcher '{watcher.name}' is in {watcher.location}; the target is in "
            f"{target.location}.",
        )
    limit = props.get("timeLimitInSeconds", CAPTURE_LIMIT_SECONDS)
    if not isinstance(limit, int) or not 0 <= limit <= CAPTURE_LIMIT_SECONDS:
        raise ArmError(
            400,
            "InvalidParameter",
            f"timeLimitInSeconds must be between 0 and {CAPTURE_LIMIT_SECONDS}.",
        )
    storage = dict(props.get("storageLocation") or {})  # the journal keeps the request
    storage_id = str(storage.get("storageId") or "")
    if not storage_id and not storage.get("filePath"):
        raise ArmError(400, "InvalidParameter", "storageLocation needs a storageId or a filePath.")
    if storage_id:
        account = state.get(storage_id)
        if account.type.lower() != "microsoft.storage/storageaccounts":
            raise ArmError(400, "InvalidParameter", f"'{storage_id}' is not a storage account.")
        started = datetime.fromtimestamp(time.time(), UTC)
        storage["storagePath"] = (
            f"https://{account.name}.blob.core.windows.net/network-watcher-logs/subscriptions/"
            f"{target.id.split('/')[2]}/resourcegroups/{target.id.split('/')[4]}/providers/"
            f"microsoft.compute/virtualmachines/{target.name}/{started:%Y/%m/%d}/"
            f"packetcapture_{started:%H_%M_%S}_{uuid.uuid4().hex[:3]}.cap"
        )
    properties = {
        **props,
        "target": target.id,
        "targetType": props.get("targetType", "AzureVM"),
        "timeLimitInSeconds": limit,
        "storageLocation": storage,
        "filters": props.get("filters") or [],
        "provisioningState": "Updating",
        _INTERNAL: {"started_at": time.time()},
    }
    resource, _ = state.put(capture_id, watcher.location, {}, properties)
    op = _start(state, resource)
    url = _status_url(req, resource, "Microsoft.Network", "operations", op)
    return 201, _capture_json(resource), {"Azure-AsyncOperation": url}


def _running(capture: Resource) -> bool:
    internal = capture.properties.get(_INTERNAL) or {}
    if "stopped_at" in internal:
        return False
    limit = int(capture.properties.get("timeLimitInSeconds") or CAPTURE_LIMIT_SECONDS)
    return limit == 0 or time.time() < float(internal.get("started_at", 0)) + limit


def _capture_status(capture: Resource) -> dict[str, Any]:
    internal = capture.properties.get(_INTERNAL) or {}
    running = _running(capture)
    body: dict[str, Any] = {
        "name": capture.name,
        "id": capture.id,
        "captureStartTime": _iso(float(internal.get("started_at", time.time()))),
        "packetCaptureStatus": "Running" if running else "Stopped",
        "packetCaptureError": [],
    }
    if not running:
        body["stopReason"] = "Manual" if "stopped_at" in internal else "TimeExceeded"
    return body


def _capture_json(resource: Resource) -> dict[str, Any]:
    body = _public(resource.arm_json())
    body.pop("location", None)
    body.pop("tags", None)
    body["type"] = CAPTURE_TYPE
    body["etag"] = f'W/"{uuid.uuid5(uuid.NAMESPACE_URL, resource.id.lower())}"'
    return body


# ---- shared ---------------------------------------------------------------------------


def _listing(state: SimState, req: Request, type_: str, render: Any) -> Answer:
    if req.method != "GET":
        raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")
    prefix = "/".join(req.path.rstrip("/").split("/")[:5]).lower() + "/"
    if req.segments[2].lower() != "resourcegroups":
        prefix = f"/subscriptions/{req.segments[1]}/".lower()
    found = [
        render(r)
        for k, r in state.resources.items()
        if k.startswith(prefix) and r.type.lower() == type_.lower()
    ]
    return 200, {"value": found}, {}


def _public(body: dict[str, Any]) -> dict[str, Any]:
    body["properties"].pop(_INTERNAL, None)
    return body


def _public_json(resource: Resource) -> dict[str, Any]:
    return _public(resource.arm_json())


def _region(location: str) -> str:
    return location.replace(" ", "").lower()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
