"""`stanch drill SCENARIO`: a realistic incident, end to end, against azuresim.

A scenario (YAML) names the world, the faults to inject, the alerts to fire, who
answers pages and approvals and when, and the targets: how fast the incident
must be acknowledged, contained (RTO) and its evidence preserved (RPO: the
failure's state captured before anything changed it). The drill runs the real
engine on a private Temporal dev server and azuresim, then reports each
milestone against its target: pass or fail, and what the runbook did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from stanch.azuresim import AzureSim, load_world
from stanch.azuresim.faults import Fault
from stanch.cli.api_client import OnCallApi
from stanch.cli.drill_access import (
    DrillAccess,
    GuestReads,
    access_report,
    access_times,
    play_access,
)
from stanch.cli.errors import UsageError
from stanch.gateway.signing import new_private_key_text
from stanch.harness.binaries import NotInstalled
from stanch.harness.dev_server import local_environment
from stanch.harness.ports import free_port
from stanch.harness.waiting import until_healthy
from stanch.models.dev_credentials import FILE_NAME as DEV_CREDENTIALS
from stanch.models.dev_credentials import provision, read_dev_credentials, write_dev_credentials
from stanch.models.duration import Duration, format_duration
from stanch.models.errors import describe_validation_error
from stanch.models.incident import IncidentState, IncidentStatus
from stanch.models.settings import Settings, settings_with
from stanch.stores.page_file import read_pages
from stanch.stores.policy import load_config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DrillAlert(_Strict):
    file: Path
    at: Duration = timedelta(0)
    overrides: dict[str, Any] = Field(default_factory=dict)  # merged into data.essentials


class Responder(_Strict):
    who: str
    acknowledges: bool = False
    approves: str | None = None  # an approval step
    # Asks to release what the runbook applied, once the runbook has finished
    # (someone else must approve the `release` step: four eyes).
    releases: bool = False
    after: Duration = timedelta(seconds=1)
    once_paged: bool = False  # the delay starts when this person is paged


class Targets(_Strict):
    acknowledge: Duration | None = None
    contain: Duration | None = None  # RTO: first alert to contained or mitigated
    evidence: Duration | None = None  # RPO: first alert to evidence captured
    # First alert to the VM's forensic capture (disk snapshots, boot
    # diagnostics) done: never met when a capture failed.
    forensics: Duration | None = None
    restore: Duration | None = None  # first alert to the release done (traffic moved back)
    # Emergency access (`access:` of the scenario): first alert to the role
    # assignment made, and how late after the grant's expiry it was revoked.
    access_granted: Duration | None = None
    access_revoked: Duration | None = None


class Scenario(_Strict):
    name: str
    description: str = ""
    world: Path
    policy: dict[str, Any]
    faults: list[Fault] = Field(default_factory=list)
    alerts: list[DrillAlert] = Field(min_length=1)
    responders: list[Responder] = Field(default_factory=list)
    targets: Targets
    expect_status: IncidentStatus | None = None
    timeout: Duration = timedelta(minutes=3)
    access: DrillAccess | None = None  # a guest let in during the incident


class Milestone(BaseModel):
    name: str
    actual: timedelta | None
    target: timedelta | None

    @property
    def passed(self) -> bool:
        return self.target is None or (self.actual is not None and self.actual <= self.target)


def load_scenario(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not YAML: {e}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        problems = describe_validation_error(e)
        raise UsageError("\n".join([f"{path}: invalid scenario", *problems])) from None
    base = path.parent
    scenario.world = (base / scenario.world).resolve()
    for alert in scenario.alerts:
        alert.file = (base / alert.file).resolve()
    return scenario


def run_drill(path: Path, as_json: bool = False) -> int:
    scenario = load_scenario(path)
    settings_with()  # a bad STANCH_* variable is refused before a server starts
    try:
        report = asyncio.run(_drill(scenario))
    except NotInstalled as e:
        raise UsageError(str(e)) from None
    print(report.model_dump_json(indent=2) if as_json else report.text())
    return 0 if report.passed else 1


class DrillReport(BaseModel):
    scenario: str
    description: str
    incident_id: str | None
    status: str | None
    expect_status: str | None
    milestones: list[Milestone]
    runbook: list[str]
    pages: list[str]
    faults_hit: list[str]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return (
            not self.problems
            and all(m.passed for m in self.milestones)
            and (self.expect_status is None or self.status == self.expect_status)
        )

    def text(self) -> str:
        def fmt(d: timedelta | None) -> str:
            return "never" if d is None else f"{d.total_seconds():.1f}s"

        lines = [
            f"drill {self.scenario}: {'PASS' if self.passed else 'FAIL'}",
            self.description,
            f"incident {self.incident_id}: {self.status}"
            + (f" (expected {self.expect_status})" if self.expect_status else ""),
            "",
            f"{'milestone':<24}{'actual':>10}{'target':>10}  result",
        ]
        for m in self.milestones:
            target = format_duration(m.target) if m.target else "-"
            lines.append(
                f"{m.name:<24}{fmt(m.actual):>10}{target:>10}  {'ok' if m.passed else 'MISSED'}"
            )
        for title, items, empty in (
            ("pages:", self.pages, "none"),
            ("runbook:", self.runbook, "none ran"),
            ("azure faults hit:", self.faults_hit, "none"),
        ):
            lines += [title, *[f"  {item}" for item in items or [empty]]]
        if self.problems:
            lines += ["problems:", *[f"  {p}" for p in self.problems]]
        return "\n".join(lines)


async def _drill(scenario: Scenario) -> DrillReport:
    from stanch.client.connection import connect
    from stanch.client.incidents import fetch_incident
    from stanch.gateway.server import serve_gateway
    from stanch.worker import worker_with_azure

    work = Path(tempfile.mkdtemp(prefix=f"drill-{scenario.name}-"))
    (work / "stanch.yaml").write_text(
        yaml.safe_dump(
            {
                **scenario.policy,
                "channels": [{"name": "pager", "type": "file", "path": str(work / "pages.jsonl")}],
            }
        )
    )
    world = load_world(scenario.world)
    sim = AzureSim(world, state_dir=work / "azuresim").start()
    for fault in scenario.faults:
        sim.faults.add(fault)
    port = free_port()
    problems: list[str] = []
    reads = GuestReads()  # the guest's own queries, when the scenario lets one in
    try:
        async with await local_environment() as env:
            gateway_url = f"http://127.0.0.1:{port}"
            settings = settings_with(
                temporal_address=env.client.service_client.config.target_host,
                task_queue=f"drill-{scenario.name}",
                config=work / "stanch.yaml",
                alert_token=SecretStr(secrets.token_urlsafe(16)),
                state_dir=work,
                gateway_url=gateway_url,
                azure_endpoint=sim.url,
                azure_ca_file=sim.ca_file,
                azure_poll_seconds=0.2,
                # As on `stanch dev`: responders act through the gateway with a
                # credential each, and the gateway signs what they decide.
                decision_key=SecretStr(new_private_key_text()),
                dev_credentials=_credentials(work, gateway_url),
            )
            stop = asyncio.Event()
            client = await connect(settings)
            async with worker_with_azure(client, settings):
                serving = asyncio.create_task(serve_gateway(settings, "127.0.0.1", port, stop))
                try:
                    incident, state, started = await _play(
                        scenario, settings, work, fetch_incident, client, problems, reads
                    )
                finally:
                    stop.set()
                    await serving
    finally:
        sim.stop()
    milestones = _milestones(scenario, state, started)
    pages = [
        f"tier {p['tier']} -> {', '.join(p['recipients'])}: {p['reason']}"
        for p in read_pages(work / "pages.jsonl")
    ]
    steps = []
    if state is not None and state.runbook is not None:
        steps = [
            f"{s.name}: {s.status}" + (f" ({s.detail})" if s.detail else "")
            for s in state.runbook.steps
        ]
    if state is not None and scenario.access is not None:
        granted, read = access_report(state, reads)
        steps += granted
        problems += read
    faults = [
        f"{c['method']} {c['path'].rsplit('/', 1)[-1]} -> {c['status'] or 'dropped'}"
        for c in sim.journal.calls()
        if c.get("fault")
    ]
    shutil.rmtree(work, ignore_errors=True)
    return DrillReport(
        scenario=scenario.name,
        description=scenario.description,
        incident_id=incident,
        status=str(state.status) if state else None,
        expect_status=str(scenario.expect_status) if scenario.expect_status else None,
        milestones=milestones,
        runbook=steps,
        pages=pages,
        faults_hit=faults,
        problems=problems,
    )


def _credentials(work: Path, gateway_url: str) -> Path:
    path = work / DEV_CREDENTIALS
    write_dev_credentials(path, provision(load_config(work / "stanch.yaml"), gateway_url))
    return path


def _api_for(settings: Settings, who: str) -> OnCallApi:
    """The responder's own development credential; someone off the roster
    has none, and the API's refusal is what the drill shows."""
    assert settings.dev_credentials is not None
    found = read_dev_credentials(settings.dev_credentials).of(who)
    return OnCallApi(settings.gateway_url, found.token if found else None)


async def _play(
    scenario: Scenario,
    settings: Settings,
    work: Path,
    fetch: Any,
    client: Any,
    problems: list[str],
    reads: GuestReads,
) -> tuple[str | None, IncidentState | None, float]:
    from stanch.cli.approvals import ask_release, decide_step
    from stanch.cli.incidents import ack_call, act

    token = settings.alert_token.get_secret_value() if settings.alert_token else ""
    # The gateway is starting in this same process.
    await until_healthy(settings.gateway_url, what="the drill's gateway")
    started = time.monotonic()
    incident: str | None = None
    async with httpx.AsyncClient() as http:
        for alert in sorted(scenario.alerts, key=lambda a: a.at):
            await asyncio.sleep(max(0.0, alert.at.total_seconds() - (time.monotonic() - started)))
            body = json.loads(alert.file.read_text())
            body["data"]["essentials"].update(alert.overrides)
            answer = await http.post(
                f"{settings.gateway_url}/alerts",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            if answer.status_code != 202:
                problems.append(f"alert {alert.file.name} refused: {answer.text}")
                return None, None, started
            incident = incident or answer.json()["incident_id"]
    assert incident is not None

    async def respond(r: Responder) -> None:
        if r.once_paged:
            pages = work / "pages.jsonl"
            while not any(r.who in p["recipients"] for p in read_pages(pages)):  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # the pager is a file: poll it, as a phone would
        await asyncio.sleep(r.after.total_seconds())
        api = _api_for(settings, r.who)
        with contextlib.suppress(UsageError):  # a refusal is part of what a drill shows
            if r.acknowledges:
                await act(api, incident, ack_call(None))
            if r.releases:
                # The incident lives in Temporal: poll it, as a person would reload.
                while (await fetch(client, incident)).view.state.runbook_result is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                await ask_release(api, incident, "drill")
            if r.approves == "release":  # once someone asked for one
                while (await fetch(client, incident)).view.state.release is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            if r.approves:
                for _ in range(200):  # until the runbook exists
                    try:
                        await decide_step(api, incident, r.approves, True, "drill")
                        break
                    except UsageError as e:
                        if "no runbook" not in str(e):
                            problems.append(f"{r.who} could not approve: {e}")
                            break
                        await asyncio.sleep(0.1)

    responders = [asyncio.create_task(respond(r)) for r in scenario.responders]
    if scenario.access is not None:
        assert settings.azure_endpoint is not None and settings.azure_ca_file is not None
        granting = play_access(
            scenario.access,
            incident,
            lambda who: _api_for(settings, who),
            settings.azure_endpoint,
            settings.azure_ca_file,
            settings.config,
            reads,
            problems,
        )
        responders.append(asyncio.create_task(granting))  # done once the grant has ended
    deadline = started + scenario.timeout.total_seconds()
    state: IncidentState | None = None
    while time.monotonic() < deadline:
        state = (await fetch(client, incident)).view.state
        if _done(scenario, state) and (scenario.access is None or responders[-1].done()):
            break
        await asyncio.sleep(0.2)
    else:
        problems.append(f"not done within {format_duration(scenario.timeout)}")
    for task in responders:
        task.cancel()
    state = (await fetch(client, incident)).view.state
    return incident, state, started


def _done(scenario: Scenario, state: IncidentState) -> bool:
    targets = scenario.targets
    if targets.acknowledge and state.acknowledged_at is None:
        return False
    if scenario.expect_status and state.status.order < scenario.expect_status.order:
        return False
    if _releasing(scenario) and (state.release is None or state.release.outcome is None):
        return not state.status.is_open
    runbook = state.runbook
    return runbook is None or runbook.outcome is not None or not state.status.is_open


def _releasing(scenario: Scenario) -> bool:
    return scenario.targets.restore is not None or any(r.releases for r in scenario.responders)


def _milestones(scenario: Scenario, state: IncidentState | None, started: float) -> list[Milestone]:
    if state is None:
        return []
    opened = state.opened_at
    contained = None
    evidence = None
    forensics = None
    if state.runbook is not None:
        for step in state.runbook.steps:
            if step.name == "capture evidence" and step.ended_at:
                evidence = step.ended_at - opened
        captures = [s for s in state.runbook.steps if s.name.startswith("capture forensics")]
        if captures and all(s.status == "succeeded" and s.ended_at for s in captures):
            forensics = max(s.ended_at for s in captures if s.ended_at) - opened
        if state.runbook_result and state.runbook_result.outcome in ("contained", "mitigated"):
            ends = [s.ended_at for s in state.runbook.steps if s.ended_at]
            contained = max(ends) - opened if ends else None
    t = scenario.targets
    return [
        Milestone(
            name="acknowledge",
            actual=state.acknowledged_at - opened if state.acknowledged_at else None,
            target=t.acknowledge,
        ),
        Milestone(name="contain (RTO)", actual=contained, target=t.contain),
        Milestone(name="evidence (RPO)", actual=evidence, target=t.evidence),
        *(
            [Milestone(name="forensics", actual=forensics, target=t.forensics)]
            if t.forensics
            else []
        ),
        *(
            [Milestone(name="restore", actual=_restored(state), target=t.restore)]
            if _releasing(scenario)
            else []
        ),
        *(_access_milestones(state, t) if scenario.access else []),
    ]


def _access_milestones(state: IncidentState, t: Targets) -> list[Milestone]:
    granted, revoked_late = access_times(state)
    return [
        Milestone(name="access granted", actual=granted, target=t.access_granted),
        # From the grant's expiry: how long the guest held the role too long.
        Milestone(name="access revoked (late)", actual=revoked_late, target=t.access_revoked),
    ]


def _restored(state: IncidentState) -> timedelta | None:
    """First alert to the release's last step, if it released."""
    release = state.release
    ends = [s.ended_at for s in release.steps if s.ended_at] if release else []
    if release is None or release.outcome != "released" or not ends:
        return None
    return max(ends) - state.opened_at
