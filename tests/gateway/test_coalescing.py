"""Alert coalescing: an incident's alerts that arrive together reach Temporal as
one signal, each request is answered only once its alert is recorded, and a
failed call fails every request it carried.

The group commit itself is tested in-process; the rest over real HTTP against
the real gateway, worker and Temporal dev server."""

from __future__ import annotations

import asyncio
import copy
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from bench.incidents import signals_received
from stanch.client.alerts import NOTHING_TO_RESOLVE, record_alerts
from stanch.client.ids import workflow_id_for
from stanch.gateway.app import create_app
from stanch.gateway.coalesce import Coalescer
from stanch.gateway.server import _QuietServer
from stanch.harness.ports import free_port
from stanch.harness.waiting import eventually
from stanch.models.alert import AlertEvent, CommonAlert, MonitorCondition
from stanch.models.audit import AuditEntry
from stanch.models.incident import IncidentStatus
from stanch.models.settings import Settings
from stanch.stores.audit import SqliteAuditLog
from stanch.testing.started import Started
from tests.support.alerts import unique_alert
from tests.support.incidents import exists, timeline, view
from tests.support.stack import CONTINUE_AS_NEW_AFTER, Stack

# ---- the group commit, in-process ------------------------------------------


class Recorder:
    """A send that records its batches and can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failing: dict[int, Exception] = {}  # batch number (from 1) -> its error

    async def __call__(self, key: str, items: list[int]) -> list[int | BaseException]:
        self.batches.append((key, list(items)))
        number = len(self.batches)
        await self.release.wait()
        if number in self.failing:
            raise self.failing[number]
        return [i * 10 for i in items]

    async def sent(self, count: int) -> None:
        """Until `count` batches have gone out (and are held, or answered)."""

        async def gone() -> bool:
            return len(self.batches) >= count

        await eventually(gone, 5, f"{count} batches sent", every=0.005)


class Arrivals:
    """Submissions to a coalescer, each counted in the same step in which the
    coalescer queues it: once all have arrived, all are queued, so a test
    waits for that instead of sleeping."""

    def __init__(self, coalescer: Coalescer[int, int]) -> None:
        self.coalescer = coalescer
        self.arrived: list[int] = []

    def submit(self, key: str, item: int, size: int = 0) -> asyncio.Task[int]:
        async def submitted() -> int:
            answer = self.coalescer.submit(key, item, size)
            self.arrived.append(item)  # `await` below queues it before yielding
            return await answer

        return asyncio.create_task(submitted())

    async def all_in(self, count: int) -> None:
        async def queued() -> bool:
            return len(self.arrived) >= count

        await eventually(queued, 5, f"{count} alerts queued", every=0.005)


async def test_first_alert_goes_alone_and_later_ones_go_together_in_order():
    send = Recorder()
    send.release.clear()
    coalescer = Coalescer(send)
    alerts = Arrivals(coalescer)
    first = alerts.submit("fp", 0)
    await send.sent(1)
    rest = [alerts.submit("fp", i) for i in range(1, 50)]
    await alerts.all_in(50)
    assert send.batches == [("fp", [0])], "the first alert must not wait for company"
    send.release.set()
    assert await asyncio.gather(first, *rest) == [i * 10 for i in range(50)]
    assert send.batches == [("fp", [0]), ("fp", list(range(1, 50)))]
    assert coalescer.in_flight == 0


async def test_fingerprints_do_not_wait_for_each_other():
    send = Recorder()
    send.release.clear()
    coalescer = Coalescer(send)
    alerts = Arrivals(coalescer)
    tasks = [alerts.submit(f"fp{i}", i) for i in range(3)]
    await send.sent(3)
    tasks += [alerts.submit(f"fp{i % 3}", i) for i in range(3, 9)]
    await alerts.all_in(9)
    assert sorted(send.batches) == [("fp0", [0]), ("fp1", [1]), ("fp2", [2])]
    send.release.set()
    await asyncio.gather(*tasks)
    assert sorted(send.batches[3:]) == [("fp0", [3, 6]), ("fp1", [4, 7]), ("fp2", [5, 8])]


async def test_a_failed_call_fails_every_request_it_carried_and_only_those():
    send = Recorder()
    send.release.clear()
    coalescer = Coalescer(send)
    alerts = Arrivals(coalescer)
    first = alerts.submit("fp", 0)
    await send.sent(1)
    waiting = [alerts.submit("fp", i) for i in range(1, 20)]
    await alerts.all_in(20)
    # The second batch (everyone who waited) fails as one.
    send.failing[2] = RuntimeError("Temporal unavailable")
    send.release.set()
    assert await first == 0
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert len(send.batches) == 2
    assert await coalescer.submit("fp", 99) == 990, "the next alert is sent afresh"


async def test_a_batch_can_fail_part_way():
    async def send(key: str, items: list[int]) -> list[int | BaseException]:
        return [i if i % 2 == 0 else ValueError(f"alert {i}") for i in items]

    coalescer: Coalescer[int, int] = Coalescer(send)
    results = await asyncio.gather(
        *(coalescer.submit("fp", i) for i in range(4)), return_exceptions=True
    )
    assert results[0] == 0 and results[2] == 2
    assert [str(r) for r in results[1::2]] == ["alert 1", "alert 3"]


async def test_batches_stay_under_the_item_and_byte_limits():
    send = Recorder()
    send.release.clear()
    coalescer = Coalescer(send, max_items=4, max_bytes=1000)
    tasks = [asyncio.create_task(coalescer.submit("fp", 0, size=10))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(coalescer.submit("fp", i, size=10)) for i in range(1, 7)]
    tasks += [asyncio.create_task(coalescer.submit("fp", i, size=600)) for i in (7, 8)]
    tasks.append(asyncio.create_task(coalescer.submit("fp", 9, size=5000)))  # alone
    await asyncio.sleep(0)
    send.release.set()
    await asyncio.gather(*tasks)
    assert [items for _, items in send.batches] == [[0], [1, 2, 3, 4], [5, 6, 7], [8], [9]]


async def test_the_linger_window_gathers_a_burst_into_one_call():
    send = Recorder()
    coalescer = Coalescer(send, window=0.05)
    await asyncio.gather(*(coalescer.submit("fp", i) for i in range(10)))
    assert send.batches == [("fp", list(range(10)))]


async def test_stopping_the_gateway_answers_everyone_still_waiting():
    send = Recorder()
    send.release.clear()
    coalescer = Coalescer(send)
    alerts = Arrivals(coalescer)
    tasks = [alerts.submit("fp", i) for i in range(5)]
    await alerts.all_in(5)
    await send.sent(1)  # the first is in flight, the others wait behind it
    for task in asyncio.all_tasks():
        if task.get_name() == "coalesce fp":
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "stopped" in str(r) for r in results), results


# ---- against Temporal --------------------------------------------------------


def alerts_received(state_dir: Path) -> list[str]:
    """Alert ids the gateway put on the audit trail (it does so only after Temporal said yes)."""
    return [
        r["record"]["details"]["alert_id"]
        for r in SqliteAuditLog(state_dir / "audit.db").records()
        if r["record"]["action"] == "alert received"
    ]


async def test_a_burst_for_one_incident_takes_far_fewer_signals_and_every_alert_counts(
    stack: Stack,
    started: Started,
):
    rule = f"burst-{uuid.uuid4().hex[:6]}"
    bodies = [unique_alert(rule=rule) for _ in range(200)]
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200), timeout=60) as http:
        responses = await asyncio.gather(*(stack.post_alert(http, b) for b in bodies))
    assert [r.status_code for r in responses] == [202] * 200, responses[0].text
    answers = [r.json() for r in responses]
    (workflow_id,) = {a["workflow_id"] for a in answers}
    started.add(stack.client.get_workflow_handle(workflow_id))
    assert sum(not a["deduplicated"] for a in answers) == 1, "one alert opened it"

    state = (await view(stack.client, workflow_id)).state
    assert state.alert_count == 200
    signals = await signals_received(stack.client, workflow_id)
    assert signals <= 50, f"{signals} signals for 200 alerts: not coalesced"
    assert len(alerts_received(stack.config.parent)) == 200
    assert SqliteAuditLog(stack.config.parent / "audit.db").verify() == []


def test_audit_records_written_together_keep_the_chain_and_each_key_once(tmp_path: Path):
    log = SqliteAuditLog(tmp_path / "audit.db")
    entry = AuditEntry(
        incident_id="i", actor="azure-monitor", action="alert received", outcome="Fired"
    )
    first = log.append("alert/a", entry)
    receipts = log.append_many([("alert/b", entry), ("alert/a", entry), ("alert/b", entry)])
    assert receipts[1] == first, "a key already recorded keeps its record"
    assert receipts[2] == receipts[0], "and so does a key repeated within the batch"
    assert [r["key"] for r in log.records()] == ["alert/a", "alert/b"]
    assert log.verify() == []


async def test_a_coalesced_storm_still_continues_as_new_and_keeps_its_timeline(
    stack: Stack, started: Started
):
    # Waves one after another: each is at least one signal, so the history
    # outgrows the dev server's lowered limit however the waves are batched.
    rule = f"waves-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=20), timeout=60) as http:
        for _ in range(20):
            wave = [unique_alert(rule=rule) for _ in range(20)]
            responses = await asyncio.gather(*(stack.post_alert(http, b) for b in wave))
            assert {r.status_code for r in responses} == {202}
    workflow_id = responses[0].json()["workflow_id"]
    started.add(stack.client.get_workflow_handle(workflow_id))
    state = (await view(stack.client, workflow_id)).state
    assert state.alert_count == 400
    assert state.runs > 1, f"never continued as new (limit {CONTINUE_AS_NEW_AFTER} events)"
    entries = await timeline(stack.client, workflow_id)
    assert [e.kind for e in entries][:2] == ["opened", "alert_fired"]
    assert sum(e.count for e in entries if e.kind == "alert_repeated") == 399
    assert sum(1 for e in entries if e.kind == "paged") == 1, "repeats must not re-page"


async def test_repeats_inside_a_batch_still_count_once(stack: Stack, started: Started):
    rule = f"retried-{uuid.uuid4().hex[:6]}"
    bodies = [unique_alert(rule=rule, alert_id=f"instance-{i % 10}") for i in range(60)]
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=60), timeout=60) as http:
        responses = await asyncio.gather(*(stack.post_alert(http, b) for b in bodies))
    assert {r.status_code for r in responses} == {202}
    workflow_id = responses[0].json()["workflow_id"]
    started.add(stack.client.get_workflow_handle(workflow_id))
    assert (await view(stack.client, workflow_id)).state.alert_count == 10


async def test_a_burst_of_resolutions_never_opens_an_incident(stack: Stack):
    rule = f"resolved-only-{uuid.uuid4().hex[:6]}"
    bodies = [unique_alert(rule=rule, monitorCondition="Resolved") for _ in range(40)]
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=40), timeout=60) as http:
        responses = await asyncio.gather(*(stack.post_alert(http, b) for b in bodies))
    assert {r.status_code for r in responses} == {202}
    assert {r.json()["note"] for r in responses} == {NOTHING_TO_RESOLVE}
    assert not await exists(stack.client, responses[0].json()["workflow_id"])


def event(alert_id: str, condition: MonitorCondition, rule: str) -> AlertEvent:
    alert = CommonAlert.model_validate(
        unique_alert(rule=rule, alert_id=alert_id, monitorCondition=condition.value)
    )
    return alert.to_event()


async def test_resolutions_ahead_of_the_first_firing_do_not_resolve_the_new_incident(
    stack: Stack,
    started: Started,
):
    rule = f"mixed-{uuid.uuid4().hex[:6]}"
    events = [
        event("a", MonitorCondition.RESOLVED, rule),
        event("b", MonitorCondition.FIRED, rule),
        event("c", MonitorCondition.FIRED, rule),
    ]
    incident_id = CommonAlert.model_validate(unique_alert(rule=rule)).fingerprint()
    recorded = await record_alerts(stack.client, stack.task_queue, incident_id, events)
    started.add(stack.client.get_workflow_handle(workflow_id_for(incident_id)))
    assert not any(isinstance(r, BaseException) for r in recorded)
    assert [(r.note, r.deduplicated) for r in recorded] == [  # type: ignore[union-attr]
        (NOTHING_TO_RESOLVE, False),
        (None, False),
        (None, True),
    ]
    state = (await view(stack.client, workflow_id_for(incident_id))).state
    assert (state.status, state.alert_count) == (IncidentStatus.TRIGGERED, 2)

    # Fired then Resolved in one batch: applied in order, so it ends resolved.
    later = [event("d", MonitorCondition.FIRED, rule), event("d", MonitorCondition.RESOLVED, rule)]
    await record_alerts(stack.client, stack.task_queue, incident_id, later)
    state = (await view(stack.client, workflow_id_for(incident_id))).state
    assert (state.status, state.alert_count) == (IncidentStatus.RESOLVED, 3)
    assert await signals_received(stack.client, workflow_id_for(incident_id)) == 2


# ---- Temporal going away in the middle -------------------------------------


class Cable:
    """A TCP proxy between the gateway and Temporal that can be cut: the fault
    is real (connections reset and refused), on the wire, not in the SDK."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._writers: set[asyncio.StreamWriter] = set()
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Cable:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.sever()

    def sever(self) -> None:
        self.cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


@asynccontextmanager
async def serve(
    settings: Settings, connect: Callable[[Settings], Awaitable[Client]]
) -> AsyncIterator[str]:
    port = free_port()
    server = _QuietServer(
        uvicorn.Config(
            create_app(settings, connect), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_temporal_going_away_fails_every_waiting_request_and_records_nothing_twice(
    stack: Stack, dev_env: WorkflowEnvironment, tmp_path: Path, started: Started
):
    target = dev_env.client.service_client.config.target_host
    async with Cable(target) as cable:

        async def through_cable(settings: Settings) -> Client:
            # Few quick retries: the test wants the failure, not the SDK's patience.
            return await Client.connect(
                f"127.0.0.1:{cable.port}",
                data_converter=pydantic_data_converter,
                retry_config=RetryConfig(max_retries=2, max_elapsed_time_millis=1000),
            )

        token = secrets.token_urlsafe(8)
        settings = Settings(
            task_queue=stack.task_queue,
            config=stack.config,
            alert_token=SecretStr(token),
            state_dir=tmp_path / "gateway",
        )
        rule = f"outage-{uuid.uuid4().hex[:6]}"
        first = unique_alert(rule=rule)
        bodies = [unique_alert(rule=rule) for _ in range(30)]
        async with serve(settings, through_cable) as url:
            async with httpx.AsyncClient(
                limits=httpx.Limits(max_connections=40), timeout=60, params={"token": token}
            ) as http:
                opened = await http.post(f"{url}/alerts", json=first)
                assert opened.status_code == 202, opened.text
                workflow_id = opened.json()["workflow_id"]
                started.add(stack.client.get_workflow_handle(workflow_id))
                signals_before = await signals_received(stack.client, workflow_id)

                cable.sever()
                during = await asyncio.gather(*(http.post(f"{url}/alerts", json=b) for b in bodies))
                assert [r.status_code for r in during] == [503] * 30
                assert all(r.headers["retry-after"] for r in during)
                assert (await view(stack.client, workflow_id)).state.alert_count == 1
                assert await signals_received(stack.client, workflow_id) == signals_before
                assert len(alerts_received(settings.state_dir)) == 1, "a 503 left an audit record"

                # Azure retries every refused webhook, and may repeat one that succeeded.
                cable.cut = False
                retried = [first, *bodies, *copy.deepcopy(bodies[:5])]
                after = await asyncio.gather(*(http.post(f"{url}/alerts", json=b) for b in retried))
                assert [r.status_code for r in after] == [202] * 36
        state = (await view(stack.client, workflow_id)).state
        assert state.alert_count == 31, "every alert counted exactly once"
        recorded = alerts_received(settings.state_dir)
        assert len(recorded) == len(set(recorded)) == 31
