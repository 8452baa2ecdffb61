"""Forensic capture with the real SDK clients against azuresim: incremental
snapshots of every managed disk, tagged with the incident and taken once even
when Temporal retries; boot diagnostics downloaded through azuresim's SAS URIs
and kept with the SHA-256 of each file (the SAS never kept); a packet capture
always bounded in time. Everything the request names is checked before Azure
is called."""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_errors import INVALID_REQUEST
from stanch.activities.forensics import BOOT_DIAGNOSTICS_UNAVAILABLE, ForensicsActivities
from stanch.azuresim.admin import trusting
from stanch.azuresim.faults import Fault
from stanch.azuresim.forensics import SAS_PREFIX, sas_uri
from stanch.harness.waiting import eventually
from stanch.models.forensics import ForensicsRequest, PacketCaptureRequest
from stanch.models.settings import Settings
from stanch.stores.evidence import EvidenceStore
from stanch.testing.estate import RG, VM1, VM2, VMSS
from stanch.worker import azure_activities
from tests.support.azure_probe import AzureProbe, ProbeInput, ProbeResult

env = ActivityEnvironment
DISKS = f"{RG}/providers/Microsoft.Compute/disks"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/stwebprod"


def forensics(azure: Any, tmp_path: Path) -> ForensicsActivities:
    return ForensicsActivities(azure, EvidenceStore(tmp_path / "evidence"))


def kept(location: str) -> bytes:
    return Path(urlparse(location).path).read_bytes()


def snapshot_puts(sim: Any) -> list[dict[str, Any]]:
    return [
        c
        for c in sim.journal.calls()
        if c["method"] == "PUT" and "/microsoft.compute/snapshots/" in c["path"].lower()
    ]


def snapshots_in(sim: Any) -> dict[str, dict[str, Any]]:
    return {
        r["name"]: r
        for r in sim.state.snapshot()["resources"]
        if r["type"] == "Microsoft.Compute/snapshots"
    }


async def test_every_managed_disk_gets_an_incremental_snapshot_tagged_with_the_incident(
    sim, azure, tmp_path
):
    request = ForensicsRequest(incident_id="inc-1", resource_id=VM1)
    taken = await env().run(forensics(azure, tmp_path).snapshot_disks, request)

    assert [(s.disk, s.source_disk_id) for s in taken.snapshots] == [
        ("os", f"{DISKS}/vm-web-1-osdisk"),
        ("data lun 0", f"{DISKS}/vm-web-1-data0"),
    ]
    assert all(s.incremental and s.provisioning_state == "Succeeded" for s in taken.snapshots)
    bodies = [c["body"] for c in snapshot_puts(sim)]
    assert [b["properties"] for b in bodies] == [
        {"creationData": {"createOption": "Copy", "sourceResourceId": s.source_disk_id}}
        | {"incremental": True}
        for s in taken.snapshots
    ]
    in_azure = snapshots_in(sim)
    assert sorted(in_azure) == ["stanch-inc-1-vm-web-1-data0", "stanch-inc-1-vm-web-1-osdisk"]
    for snapshot in in_azure.values():
        assert snapshot["tags"]["stanch.incident"] == "inc-1"
        assert snapshot["tags"]["stanch.forensics"] == "true"
        assert snapshot["location"] == "westeurope"
        assert snapshot["properties"]["incremental"] is True

    # The manifest is the evidence: its hash is what the audit trail records.
    manifest = kept(taken.location)
    assert hashlib.sha256(manifest).hexdigest() == taken.sha256 and taken.size == len(manifest)
    assert [s["snapshot_id"] for s in json.loads(manifest)["snapshots"]] == [
        s.snapshot_id for s in taken.snapshots
    ]


async def test_a_second_run_finds_its_snapshots_and_takes_none(sim, azure, tmp_path):
    activities = forensics(azure, tmp_path)
    request = ForensicsRequest(incident_id="inc-2", resource_id=VM1)
    first = await env().run(activities.snapshot_disks, request)
    again = await env().run(activities.snapshot_disks, request)
    assert len(snapshot_puts(sim)) == 2, "one PUT per disk, ever"
    assert [s.reused for s in again.snapshots] == [True, True]
    assert [s.snapshot_id for s in again.snapshots] == [s.snapshot_id for s in first.snapshots]
    assert again.sha256 == first.sha256, "the first manifest kept counts"

    # Another incident is another set of snapshots.
    other = await env().run(
        activities.snapshot_disks, ForensicsRequest(incident_id="inc-3", resource_id=VM1)
    )
    assert not any(s.reused for s in other.snapshots) and len(snapshot_puts(sim)) == 4


async def test_a_snapshot_of_that_name_for_another_disk_is_left_alone(sim, azure, tmp_path):
    # Someone took "our" name for vm-web-1's OS disk from another disk.
    compute = azure.compute(VM1.split("/")[2]).snapshots
    poller = await compute.begin_create_or_update(
        "rg-web",
        "stanch-inc-4-vm-web-1-osdisk",
        {
            "location": "westeurope",
            "properties": {
                "creationData": {
                    "createOption": "Copy",
                    "sourceResourceId": f"{DISKS}/vm-web-2-osdisk",
                }
            },
        },
        polling_interval=0.05,
    )
    await poller.result()
    with pytest.raises(ApplicationError) as refused:
        await env().run(
            forensics(azure, tmp_path).snapshot_disks,
            ForensicsRequest(incident_id="inc-4", resource_id=VM1),
        )
    assert refused.value.non_retryable and "left as it is" in str(refused.value)
    assert len(snapshot_puts(sim)) == 1, "only the stranger's"


@pytest.mark.parametrize(
    "fault",
    [
        # Azure made the snapshot; its answer never arrived. The retry reads
        # before it writes, finds the snapshot and takes no second one.
        Fault(path="/snapshots/stanch-inc-9-vm-web-1-osdisk$", method="PUT", drop_after=True),
        # Polling the operation failed: the retry finds the snapshot made.
        Fault(path="/DiskOperations/", method="GET", status=500, times=1),
        # Refused before anything was made: the retry makes it, once.
        Fault(
            path="/snapshots/stanch-inc-9-vm-web-1-data0$", method="PUT", status=429, retry_after=0
        ),
    ],
    ids=["put-answer-lost", "poll-500", "put-429"],
)
async def test_temporal_retries_take_each_snapshot_once(dev_env, sim, azure, fault):
    sim.faults.add(fault)
    request = ForensicsRequest(incident_id="inc-9", resource_id=VM1)
    outcome = await probe(dev_env, azure, "snapshot_disks", request.model_dump())
    assert outcome.ok, outcome
    assert fault.id in {c["fault"] for c in sim.journal.calls()}, "the fault fired"
    # A creation: answered 202, or carried out and its answer dropped. (A
    # transport may resend a PUT whose answer it lost: Azure answers 200,
    # the same snapshot updated, not a second one.)
    created = [
        c["path"].rsplit("/", 1)[-1]
        for c in snapshot_puts(sim)
        if c["status"] == 202 or (c["status"] is None and c["applied"])
    ]
    calls = [(c["method"], c["path"][-40:], c["status"], c["fault"]) for c in sim.journal.calls()]
    assert sorted(created) == ["stanch-inc-9-vm-web-1-data0", "stanch-inc-9-vm-web-1-osdisk"], calls
    assert sorted(snapshots_in(sim)) == sorted(created)
    assert outcome.result is not None
    assert [s["provisioning_state"] for s in outcome.result["snapshots"]] == ["Succeeded"] * 2


async def test_boot_diagnostics_are_kept_with_the_hash_of_each_file_and_never_the_sas(
    sim, azure, tmp_path
):
    activities = forensics(azure, tmp_path)
    request = ForensicsRequest(incident_id="inc-5", resource_id=VM1)
    evidence = await env().run(activities.fetch_boot_diagnostics, request)

    bundle_bytes = kept(evidence.location)
    assert hashlib.sha256(bundle_bytes).hexdigest() == evidence.sha256
    files = json.loads(bundle_bytes)["files"]
    serial = files["serial_log"]["text"].encode()
    screenshot = base64.b64decode(files["screenshot"]["base64"])
    assert hashlib.sha256(serial).hexdigest() == evidence.serial_log_sha256
    assert hashlib.sha256(screenshot).hexdigest() == evidence.screenshot_sha256
    assert files["serial_log"]["sha256"] == evidence.serial_log_sha256
    assert b"vm-web-1" in serial and b"guest OS heartbeat lost" in serial
    assert screenshot.startswith(b"\x89PNG\r\n\x1a\n")
    # The SAS signature is a credential to the VM's logs: not in the evidence.
    assert b"sig=" not in bundle_bytes and b"se=" not in bundle_bytes
    (post,) = [c for c in sim.journal.calls() if c["method"] == "POST"]
    assert post["path"].endswith("/retrieveBootDiagnosticsData") and not post["mutation"]
    assert post["query"]["sasuriexpirationtimeinminutes"] == "10"
    downloads = [c for c in sim.journal.calls() if c["path"].startswith("/_sas/")]
    assert len(downloads) == 2

    again = await env().run(activities.fetch_boot_diagnostics, request)
    assert again.reused and again.sha256 == evidence.sha256
    assert len([c for c in sim.journal.calls() if c["path"].startswith("/_sas/")]) == 2


async def test_a_sas_uri_works_only_as_signed_and_until_it_expires(sim, azure):
    machines = azure.compute(VM1.split("/")[2]).virtual_machines
    uris = await machines.retrieve_boot_diagnostics_data(
        "rg-web", "vm-web-1", sas_uri_expiration_time_in_minutes=1
    )
    log = uris.serial_console_log_blob_uri
    path = urlparse(log).path
    container, blob = path.removeprefix(SAS_PREFIX).split("/")
    expired = sas_uri(sim.url, container, blob, int(time.time()) - 1)
    async with httpx.AsyncClient(verify=trusting(sim.ca_file)) as http:
        assert (await http.get(log)).status_code == 200
        assert (await http.get(log.replace("sig=", "sig=0"))).status_code == 403, "forged"
        assert (await http.get(expired)).status_code == 403, "expired"
        assert (await http.get(log.split("?")[0])).status_code == 403, "no SAS, no log"


async def test_a_vm_without_boot_diagnostics_is_a_clear_non_retryable_failure(sim, azure, tmp_path):
    with sim.state.lock:
        sim.state.get(VM2).properties["diagnosticsProfile"] = {
            "bootDiagnostics": {"enabled": False}
        }
    with pytest.raises(ApplicationError) as off:
        await env().run(
            forensics(azure, tmp_path).fetch_boot_diagnostics,
            ForensicsRequest(incident_id="inc-6", resource_id=VM2),
        )
    assert off.value.type == BOOT_DIAGNOSTICS_UNAVAILABLE and off.value.non_retryable
    assert "not enabled" in str(off.value)
    assert not (tmp_path / "evidence").exists()


async def test_a_packet_capture_is_bounded_in_time_and_started_once(sim, azure, tmp_path):
    activities = forensics(azure, tmp_path)
    request = PacketCaptureRequest(
        incident_id="inc-7",
        resource_id=VM1,
        storage_account_id=STORAGE,
        duration=timedelta(seconds=2),
    )
    started = await env().run(activities.start_packet_capture, request)
    assert started.time_limit_seconds == 2 and not started.reused
    assert started.storage_path and started.storage_path.startswith("https://stwebprod.blob.")
    (put,) = [c for c in sim.journal.calls() if c["method"] == "PUT"]
    assert put["path"].endswith(
        "/rg-ops/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westeurope"
        "/packetCaptures/stanch-inc-7-vm-web-1"
    )
    assert put["body"]["properties"]["timeLimitInSeconds"] == 2
    assert put["body"]["properties"]["storageLocation"] == {"storageId": STORAGE}
    bundle = json.loads(kept(started.location))
    assert bundle["time_limit_seconds"] == 2 and bundle["capture_id"] == started.capture_id

    # Azure stops it at the limit, whether or not stanch comes back.
    captures = azure.network(VM1.split("/")[2]).packet_captures

    async def status() -> str:
        poller = await captures.begin_get_status(
            "rg-ops", "NetworkWatcher_westeurope", "stanch-inc-7-vm-web-1", polling_interval=0
        )
        result = await poller.result()
        return f"{result['packetCaptureStatus']}/{result.get('stopReason')}"

    assert (await status()).startswith("Running")

    async def stopped_at_the_limit() -> bool:
        return await status() == "Stopped/TimeExceeded"

    await eventually(stopped_at_the_limit, timeout=10, what="the capture to stop at its limit")

    again = await env().run(activities.start_packet_capture, request)
    assert again.reused and again.capture_id == started.capture_id
    assert len([c for c in sim.journal.calls() if c["method"] == "PUT"]) == 1


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"duration": timedelta(0)}, "duration: 0 s"),
        ({"duration": timedelta(hours=5, seconds=1)}, "Network Watcher's limit"),
        ({"storage_account_id": VMSS}, "storage_account_id: a packet capture is written"),
        ({"resource_id": VMSS}, "forensic capture is of virtual machines"),
        ({"incident_id": "../../etc"}, "incident_id"),
    ],
)
async def test_a_bad_packet_capture_request_is_refused_before_azure(
    sim, azure, tmp_path, change, why
):
    request = PacketCaptureRequest(
        incident_id="inc-8", resource_id=VM1, storage_account_id=STORAGE
    ).model_copy(update=change)
    with pytest.raises(ApplicationError) as refused:
        await env().run(forensics(azure, tmp_path).start_packet_capture, request)
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert why in str(refused.value)
    assert sim.journal.calls() == [] and not (tmp_path / "evidence").exists()


async def probe(dev_env, azure, activity: str, arg: dict[str, Any]) -> ProbeResult:
    queue = f"probe-{uuid.uuid4()}"
    state_dir = Path(tempfile.mkdtemp())
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[AzureProbe],
        activities=azure_activities(azure, Settings(state_dir=state_dir)),
    ):
        return await dev_env.client.execute_workflow(
            AzureProbe.run,
            ProbeInput(activity=activity, arg=arg),
            id=f"probe-{uuid.uuid4()}",
            task_queue=queue,
        )
