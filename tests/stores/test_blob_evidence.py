"""Evidence in Azure Blob Storage (stores/blob_evidence.py), against Azurite,
Microsoft's Storage emulator, started by this module: each bundle written once
(the service refuses a second write), its SHA-256 in the blob's metadata and
in the audit trail, the incident in a blob index tag."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from temporalio.worker import Worker

from stanch.harness.azurite import Azurite, running_azurite
from stanch.harness.binaries import installed
from stanch.harness.services import stanch_env
from stanch.models.settings import Settings
from stanch.stores.blob_evidence import BlobEvidenceStore, open_container
from stanch.stores.evidence import (
    EvidenceConflict,
    EvidenceSettingError,
    bundle_bytes,
    evidence_store,
)
from stanch.testing.estate import VM1
from stanch.testing.runbooks import audit_records, result_of, start_runbook
from tests.support.azurite import blob_names, evidence_settings, fresh_container, tagged
from tests.support.plans import policy_file


@pytest.fixture(scope="module")
async def azurite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Azurite]:
    async with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture
def container(azurite: Azurite):
    client = fresh_container(azurite)
    yield client
    client.close()


@pytest.fixture
def store(azurite: Azurite, container) -> BlobEvidenceStore:
    """Chosen from settings, as the worker chooses it."""
    chosen = evidence_store(Settings(**evidence_settings(azurite, container)))
    assert isinstance(chosen, BlobEvidenceStore)
    return chosen


BUNDLE = {"resource": {"id": "vm1", "power": "running"}, "logs": [1, 2]}


def test_a_bundle_is_kept_with_its_hash_in_metadata_and_its_incident_in_tags(store, container):
    assert store.find("inc-1", "vm1.json") is None

    ref = store.keep("inc-1", "vm1.json", BUNDLE)
    store.keep("inc-2", "vm1.json", {"another": "incident"})

    blob = container.get_blob_client("inc-1/vm1.json")
    data = blob.download_blob().readall()
    assert json.loads(data) == BUNDLE
    assert (ref.sha256, ref.size) == (hashlib.sha256(data).hexdigest(), len(data))
    properties = blob.get_blob_properties()
    assert properties.metadata == {"sha256": ref.sha256, "incident": "inc-1"}
    assert properties.content_settings.content_type == "application/json"
    assert blob.get_blob_tags() == {"incident": "inc-1"}
    assert tagged(container, "inc-1") == ["inc-1/vm1.json"]
    assert ref.location == blob.url and "?" not in ref.location
    assert store.find("inc-1", "vm1.json") == ref


def test_the_service_refuses_a_second_write_of_a_name(store, container):
    """Write-once is Azure's rule: a write that does not go through our store
    (overwrite=False, as the store writes) is refused by the service too."""
    store.keep("inc-1", "vm1.json", BUNDLE)
    blob = container.get_blob_client("inc-1/vm1.json")

    with pytest.raises(ResourceExistsError) as refused:
        blob.upload_blob(b'{"tampered": true}', overwrite=False)

    # The storage SDK sets the service's error code on the exception it raises.
    assert getattr(refused.value, "error_code", None) == "BlobAlreadyExists"
    assert refused.value.status_code == 409
    assert blob.download_blob().readall() == bundle_bytes(BUNDLE)


def test_an_identical_retry_is_done_already(store, container):
    """An activity retried after its first attempt's write landed (the worker
    died before it could report) keeps the same bundle: nothing to do."""
    first = store.keep("inc-1", "vm1.json", BUNDLE)
    written = container.get_blob_client("inc-1/vm1.json").get_blob_properties()

    again = store.keep("inc-1", "vm1.json", json.loads(json.dumps(BUNDLE)))

    assert again == first
    after = container.get_blob_client("inc-1/vm1.json").get_blob_properties()
    assert (after.etag, after.last_modified) == (written.etag, written.last_modified)
    assert blob_names(container) == ["inc-1/vm1.json"]


def test_a_different_bundle_under_a_kept_name_is_refused_clearly(store, container):
    first = store.keep("inc-1", "vm1.json", BUNDLE)
    later = {"resource": {"id": "vm1", "power": "deallocated"}}

    with pytest.raises(EvidenceConflict) as conflict:
        store.keep("inc-1", "vm1.json", later)

    refused_sha = hashlib.sha256(bundle_bytes(later)).hexdigest()
    assert conflict.value.kept == first
    assert str(conflict.value) == (
        f"evidence vm1.json is already kept at {first.location} with sha256 "
        f"{first.sha256}; a different bundle (sha256 {refused_sha}) was refused"
    )
    # Refused by the service, not by a check of ours before writing.
    cause = conflict.value.__cause__
    assert isinstance(cause, ResourceExistsError)
    assert getattr(cause, "error_code", None) == "BlobAlreadyExists"
    blob = container.get_blob_client("inc-1/vm1.json")
    assert blob.download_blob().readall() == bundle_bytes(BUNDLE)


async def test_a_runbook_keeps_its_evidence_in_blob_storage_and_its_hash_in_the_audit_trail(
    ts_env, sim, azure, azurite, container, tmp_path, task_queue, started
):
    """quarantine_vm's capture step (it runs in dry runs too) through a worker
    whose settings point evidence at the container."""
    from stanch.worker import WORKFLOWS, activities_for

    settings = Settings(
        config=policy_file(tmp_path),
        state_dir=tmp_path,
        task_queue=task_queue,
        **evidence_settings(azurite, container),
    )
    async with Worker(
        ts_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, azure),
    ):
        handle = await start_runbook(
            started, ts_env.client, task_queue, "quarantine_vm", VM1, dry_run=True
        )
        result = await result_of(handle)

    (evidence,) = result.evidence
    incident = handle.id.split("-")[1]
    assert blob_names(container) == [f"{incident}/vm-web-1.json"]
    assert tagged(container, incident) == [f"{incident}/vm-web-1.json"]
    blob = container.get_blob_client(f"{incident}/vm-web-1.json")
    stored = blob.download_blob().readall()
    assert hashlib.sha256(stored).hexdigest() == evidence.sha256
    assert blob.get_blob_properties().metadata["sha256"] == evidence.sha256
    assert evidence.location == blob.url
    assert json.loads(stored)["resource"]["id"].lower() == VM1.lower()
    captured = next(r for r in audit_records(tmp_path) if r["action"] == "capture evidence")
    assert captured["details"]["sha256"] == evidence.sha256
    assert captured["details"]["evidence"] == blob.url
    assert not (tmp_path / "evidence").exists(), "nothing kept on the worker's disk"


# ---- settings: a clear refusal, the secret never in it -----------------------------

KEY = "c2VjcmV0LWtleS1ub3QtdG8tYmUtc2hvd24="
CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


@pytest.mark.parametrize(
    ("url", "connection", "says"),
    [
        ("not a url", None, "STANCH_EVIDENCE_URL: 'not a url' is not a container URL"),
        ("https://acct.blob.core.windows.net", None, "is not a container URL"),
        ("ftp://acct.blob.core.windows.net/evidence", None, "is not a container URL"),
        (
            "https://acct.blob.core.windows.net/evidence?sv=2024&sig=abc",
            None,
            "STANCH_EVIDENCE_URL: give the container's URL alone",
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/evidence",
            None,
            "is not https, and DefaultAzureCredential sends tokens over https only",
        ),
        (
            "http://127.0.0.1:10001/devstoreaccount1/evidence",
            CONNECTION,
            "names the account at http://127.0.0.1:10001/devstoreaccount1, but "
            "STANCH_EVIDENCE_CONNECTION_STRING is for http://127.0.0.1:10000/devstoreaccount1/",
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/evidence",
            f"AccountKey={KEY}",
            "STANCH_EVIDENCE_CONNECTION_STRING: not an Azure Storage connection string",
        ),
    ],
)
def test_settings_that_name_no_container_are_refused_by_name(url, connection, says):
    with pytest.raises(EvidenceSettingError) as refused:
        open_container(url, connection)
    assert says in str(refused.value)
    assert KEY not in str(refused.value)


def test_a_worker_refuses_to_start_on_an_evidence_url_it_cannot_use(tmp_path: Path):
    """Exit 2 naming the setting, before it connects to anything."""
    env = stanch_env(
        config=policy_file(tmp_path),
        evidence_url="http://127.0.0.1:10000/devstoreaccount1/evidence",
        temporal_address="127.0.0.1:1",  # never reached
    )
    worker = subprocess.run(
        [installed("stanch"), "--state-dir", str(tmp_path), "worker"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert worker.returncode == 2, worker.stderr
    assert "STANCH_EVIDENCE_URL: http://127.0.0.1:10000/devstoreaccount1/evidence is not https" in (
        worker.stderr
    )


def test_files_stay_the_default(tmp_path: Path):
    from stanch.stores.evidence import EvidenceStore

    store = evidence_store(Settings(state_dir=tmp_path))
    assert isinstance(store, EvidenceStore) and store.directory == tmp_path / "evidence"
