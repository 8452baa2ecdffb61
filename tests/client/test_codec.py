"""Incident data is sealed before it leaves our processes (issue 14, item 6):
the Temporal service holds only ciphertext, keys rotate, a payload under a key
we do not hold is an error naming it, encrypted histories replay, and with no
key everything stays plain and says so."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.client import connection
from stanch.client.codec import (
    ENCODING,
    KEY_ID_FIELD,
    PayloadDecryptionError,
    PayloadEncryption,
    UnknownPayloadKey,
)
from stanch.client.connection import data_converter, payload_keys
from stanch.client.ids import workflow_id_for
from stanch.client.incidents import list_incidents, listing_query
from stanch.client.payload_keys import PayloadKeysError, read_payload_keys
from stanch.harness.ports import free_port
from stanch.harness.waiting import eventually, wait_until
from stanch.models.settings import Settings
from stanch.testing.estate import DEMO_ALERT, VM1
from stanch.worker import WORKFLOWS
from tests.support.alerts import unique_alert
from tests.support.encryption import (
    encrypted_stack,
    new_key,
    payloads_in,
    recorded_keys_file,
    search_attribute_names,
    without_plain_by_design,
    write_payload_keys,
)
from tests.support.incidents import settled
from tests.support.logs import json_logs
from tests.support.plans import REMEDIATION, auth, policy_file
from tests.support.stack import Stack

HISTORIES = Path(__file__).resolve().parents[1] / "histories" / "encrypted"
# What the listing may show in plain text, and why none of it is sensitive
# (see client/search_attributes.py); Temporal's own: patch ids, build ids.
PLAIN_SEARCH_ATTRIBUTES = {
    "IncidentStatus",
    "IncidentSeverity",
    "IncidentService",
    "IncidentResources",
    "TemporalChangeVersion",
    "BuildIds",
}


@pytest.fixture
def stack_payload_keys() -> dict[str, bytes]:
    """The conftest's `stack` seals with one key."""
    return {"2026-06": new_key()}


async def stored_history(plain: Client, workflow_id: str) -> History:
    """The history as the Temporal service hands it to anyone (no codec)."""
    fetched = await plain.get_workflow_handle(workflow_id).fetch_history()
    return History(events=fetched.events)


@pytest.mark.devserver
async def test_the_service_stores_only_ciphertext(stack: Stack, dev_env: WorkflowEnvironment):
    marker = uuid.uuid4().hex[:8]
    title = f"Checkout latency {marker}"
    note = f"Zed Quinlan from payments called {marker}"
    body = json.loads(DEMO_ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = title
    async with httpx.AsyncClient(timeout=30) as http:
        incident = (await stack.post_alert(http, body)).json()["incident_id"]
        base = f"{stack.url}/api/incidents/{incident}"

        async def gated() -> dict | None:
            detail = await http.get(base, headers=auth("viewer"))
            return (
                detail.json()
                if detail.status_code == 200 and detail.json()["pending_approvals"]
                else None
            )

        detail = await eventually(gated, 30, f"quarantine_vm waiting on {incident}")
        noted = await http.post(f"{base}/notes", json={"text": note}, headers=auth("responder"))
        assert noted.status_code == 200, noted.text
        role = {"role": "incident_commander", "assignee": "carol"}
        assert (
            await http.post(f"{base}/roles", json=role, headers=auth("responder"))
        ).status_code == 200
        # Through the sealed path, everything reads back as it was written.
        shown = (await http.get(base, headers=auth("viewer"))).json()
        assert note in json.dumps(shown["timeline"])
    runbook = detail["state"]["runbook"]["workflow_id"]
    incident_handle = stack.client.get_workflow_handle(workflow_id_for(incident))
    try:
        await settled(incident_handle)
        codec = stack.client.data_converter.payload_codec
        assert isinstance(codec, PayloadEncryption)
        secrets = [title, note, "Zed Quinlan", VM1, VM1.lower(), "vm-web-1", "alice", "carol"]
        for workflow_id in (workflow_id_for(incident), runbook):
            history = await stored_history(dev_env.client, workflow_id)
            stored = without_plain_by_design(history)
            raw = stored.SerializeToString()
            leaked = [s for s in secrets if s.encode() in raw or s.lower().encode() in raw]
            assert not leaked, f"{workflow_id}: {leaked} in plain text outside search attributes"
            payloads = payloads_in(stored)
            assert payloads, "the history carries payloads"
            assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
            assert {p.metadata[KEY_ID_FIELD] for p in payloads} == {b"2026-06"}
            assert search_attribute_names(history) <= PLAIN_SEARCH_ATTRIBUTES
            # The ciphertext is the incident: opened with the key, it says what happened.
            opened = b"".join(p.data for p in await codec.decode(payloads))
            said = ["vm-web-1"] if workflow_id == runbook else [title, note, "carol"]
            assert all(s.encode() in opened for s in said), said
    finally:
        for workflow_id in (runbook, workflow_id_for(incident)):
            try:
                await stack.client.get_workflow_handle(workflow_id).terminate("test done")
            except Exception:
                pass


async def test_keys_rotate_newest_encrypts_every_listed_key_decrypts(tmp_path: Path):
    old, new = new_key(), new_key()
    before = Settings(payload_keys_file=write_payload_keys(tmp_path / "a.json", {"k1": old}))
    rotated = Settings(
        payload_keys_file=write_payload_keys(tmp_path / "b.json", {"k2": new, "k1": old})
    )
    retired = Settings(payload_keys_file=write_payload_keys(tmp_path / "c.json", {"k2": new}))
    sealed_before = await data_converter(before).encode(["note by alice"])
    assert sealed_before[0].metadata[KEY_ID_FIELD] == b"k1"

    # After rotation: what k1 sealed still opens; what is sealed now is under k2.
    assert await data_converter(rotated).decode(sealed_before, [str]) == ["note by alice"]
    sealed_after = await data_converter(rotated).encode(["note by bob"])
    assert sealed_after[0].metadata[KEY_ID_FIELD] == b"k2"
    assert b"bob" not in sealed_after[0].SerializeToString()
    # A fresh nonce each time: the same value never seals the same way twice.
    again = await data_converter(rotated).encode(["note by bob"])
    assert again[0].data != sealed_after[0].data

    # A process not yet given k2 says which key it lacks; so does one where k1 is retired.
    with pytest.raises(UnknownPayloadKey, match="'k2'"):
        await data_converter(before).decode(sealed_after, [str])
    with pytest.raises(UnknownPayloadKey, match="'k1'"):
        await data_converter(retired).decode(sealed_before, [str])


@pytest.mark.devserver
async def test_a_running_incident_lives_through_a_key_rotation(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    azure: AzureClients,
    sim: AzureSim,
):
    """Opened under k1; then every process restarts with k2 first and k1
    kept: the new worker replays the k1 history, and what happens next is
    sealed under k2."""
    old, new = new_key(), new_key()
    config = policy_file(tmp_path, **REMEDIATION)
    before = write_payload_keys(tmp_path / "before.json", {"k1": old})
    after = write_payload_keys(tmp_path / "after.json", {"k2": new, "k1": old})
    title = f"Disk full {uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=30) as http:
        async with encrypted_stack(
            dev_env, tmp_path, task_queue, config, azure, sim, before
        ) as first:
            opened = await first.post_alert(http, unique_alert(rule=title))
            assert opened.status_code == 202, opened.text
            incident = opened.json()["incident_id"]
            await settled(first.client.get_workflow_handle(workflow_id_for(incident)))
        async with encrypted_stack(
            dev_env, tmp_path, task_queue, config, azure, sim, after
        ) as second:
            handle = second.client.get_workflow_handle(workflow_id_for(incident))
            try:
                noted = await http.post(
                    f"{second.url}/api/incidents/{incident}/notes",
                    json={"text": "rotated"},
                    headers=auth("responder"),
                )
                assert noted.status_code == 200, noted.text
                shown = (
                    await http.get(f"{second.url}/api/incidents/{incident}", headers=auth("viewer"))
                ).json()
                assert title in json.dumps(shown) and "rotated" in json.dumps(shown["timeline"])
                stored = without_plain_by_design(await stored_history(dev_env.client, handle.id))
                assert {p.metadata[KEY_ID_FIELD] for p in payloads_in(stored)} == {b"k1", b"k2"}
            finally:
                await handle.terminate("test done")


async def test_a_payload_that_does_not_open_is_an_error_never_plaintext(tmp_path: Path):
    keys = read_payload_keys(write_payload_keys(tmp_path / "k.json", {"k1": new_key()}))
    codec = PayloadEncryption(keys)
    (sealed,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')])

    unknown = Payload()
    unknown.CopyFrom(sealed)
    unknown.metadata[KEY_ID_FIELD] = b"k9"
    with pytest.raises(UnknownPayloadKey) as refused:
        await codec.decode([unknown])
    assert "'k9'" in str(refused.value) and "k1" in str(refused.value)

    altered = Payload()
    altered.CopyFrom(sealed)
    altered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        await codec.decode([altered])

    unlabelled = Payload()
    unlabelled.CopyFrom(sealed)
    del unlabelled.metadata[KEY_ID_FIELD]
    with pytest.raises(PayloadDecryptionError, match=KEY_ID_FIELD):
        await codec.decode([unlabelled])

    # A process with no keys at all refuses a sealed payload too.
    with pytest.raises(UnknownPayloadKey, match="none"):
        await PayloadEncryption(None).decode([sealed])
    # What was never sealed (an incident from before the key) passes as it is.
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"old"')
    assert await codec.decode([plain]) == [plain]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"k1": "not base64!"}', "key 'k1': not base64"),
        ('{"k1": "AAAA"}', "key 'k1': 3 bytes; AES-256 needs 32"),
        ("[]", "expected a mapping"),
        ("{}", "expected a mapping"),
        ('{"bad id": "AAAA"}', "key id 'bad id'"),
        ("k1: [1, 2]", "key 'k1': expected a base64 string"),
        ("{unclosed", "neither JSON nor YAML"),
    ],
)
def test_a_bad_key_file_is_refused_naming_the_key(tmp_path: Path, content: str, problem: str):
    path = tmp_path / "keys.yaml"
    path.write_text(content)
    with pytest.raises(PayloadKeysError, match=problem.replace("(", r"\(")) as refused:
        payload_keys(Settings(payload_keys_file=path))
    assert str(path) in str(refused.value)


def test_the_key_file_is_yaml_or_json_private_and_never_quoted(tmp_path: Path):
    key = new_key()
    path = tmp_path / "keys.yaml"
    import base64

    text = base64.b64encode(key).decode()
    path.write_text(f'"2026-06": "{text}"\n"2025-12": "{base64.b64encode(new_key()).decode()}"\n')
    path.chmod(0o644)
    keys = read_payload_keys(path)
    assert keys.active_id == "2026-06" and keys.ids == ["2026-06", "2025-12"]
    assert oct(path.stat().st_mode & 0o777) == "0o600", "tightened on read, as the audit key is"
    path.write_text(f'{{"k1": "{text[:-4]}"}}')
    with pytest.raises(PayloadKeysError) as refused:
        read_payload_keys(path)
    assert text[:8] not in str(refused.value)
    with pytest.raises(PayloadKeysError, match="no such file"):
        read_payload_keys(tmp_path / "missing.json")


def test_without_a_key_payloads_stay_plain_and_it_says_so_once(caplog: pytest.LogCaptureFixture):
    connection._SAID.clear()
    with caplog.at_level(logging.INFO, logger="stanch.encryption"):
        first = data_converter(Settings())
        data_converter(Settings())
    assert first is pydantic_data_converter
    said = [r.getMessage() for r in caplog.records if r.name == "stanch.encryption"]
    assert len(said) == 1 and "NOT encrypted" in said[0]


@pytest.mark.parametrize(
    "path", sorted(HISTORIES.glob("*.json")) if HISTORIES.is_dir() else [], ids=lambda p: p.stem
)
async def test_encrypted_histories_replay(path: Path, tmp_path: Path):
    """Recorded by `python -m tests.histories.record encrypted`: every payload
    sealed under the recorded test key, replayed through the codec."""
    ids = json.loads((path.parents[1] / "workflow_ids.json").read_text())
    history = WorkflowHistory.from_json(
        ids.get(f"encrypted/{path.stem}", path.stem), path.read_text()
    )
    stored = without_plain_by_design(History(events=history.events))
    encodings = {p.metadata.get("encoding") for p in payloads_in(stored)}
    assert encodings == {ENCODING}, "the recorded history is sealed"
    converter = data_converter(Settings(payload_keys_file=recorded_keys_file(tmp_path)))
    await Replayer(workflows=WORKFLOWS, data_converter=converter).replay_workflow(history)
    # Without the key, the same history cannot even be read.
    result = await Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None


def test_an_encrypted_history_is_recorded():
    assert sorted(HISTORIES.glob("*.json")), "python -m tests.histories.record encrypted"


def test_stanch_dev_without_a_key_works_plain_and_says_so(tmp_path: Path):
    """`stanch dev` with no STANCH_PAYLOAD_KEYS_FILE: its log says once that
    payloads are not encrypted, an alert opens an incident, and the dev
    server's history holds the alert in plain text."""
    ports = {name: free_port() for name in ("http", "temporal", "ui", "sim", "metrics")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    log = tmp_path / "dev.log"
    argv = [sys.executable, "-m", "stanch.cli.main", "dev", "--state-dir", str(tmp_path / "state")]
    for name in ports:
        argv += [f"--{name}-port", str(ports[name])]
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{ports['http']}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 120, "stanch dev's gateway")
        said = [e for e in json_logs(log) if "encrypted" in str(e.get("msg"))]
        assert len(said) == 1 and "NOT encrypted" in said[0]["msg"], said

        sample = (
            Path(__file__).resolve().parents[2]
            / "examples"
            / "alerts"
            / "test_action_resource_health.json"
        )
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "stanch.cli.main",
                "--state-dir",
                str(tmp_path / "state"),
                "alert",
                "send",
                str(sample),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        incident = json.loads(sent.stdout)["incident_id"]
        rule = json.loads(sample.read_text())["data"]["essentials"]["alertRule"]

        async def plain_history() -> bytes:
            client = await Client.connect(f"127.0.0.1:{ports['temporal']}")
            history = await stored_history(client, workflow_id_for(incident))
            return history.SerializeToString()

        assert rule.encode() in asyncio.run(plain_history()), "plain payloads, as it said"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.devserver
async def test_a_process_without_the_key_lists_sealed_incidents_by_their_plain_fields(
    stack: Stack, dev_env: WorkflowEnvironment
):
    """A gateway or CLI without the payload key (or with another) lists a sealed
    incident by its search attributes instead of failing the whole listing with
    a 500 (found by the OpenAPI fuzz test after this module had run on the
    shared dev server)."""
    async with httpx.AsyncClient(timeout=30) as http:
        incident = (await stack.post_alert(http, json.loads(DEMO_ALERT.read_text()))).json()[
            "incident_id"
        ]
    page = await list_incidents(dev_env.client, listing_query(running_only=True), page_size=500)
    listed = {row.incident_id: row for row in page.incidents}
    assert incident in listed
    assert listed[incident].title == "(encrypted: this process has no key for it)"
    assert listed[incident].severity is not None  # a plain search attribute
