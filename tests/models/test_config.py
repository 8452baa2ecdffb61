"""stanch.yaml validation: every problem reported with its path."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr

from stanch.activities.response_plan import build_plan
from stanch.client.ids import workflow_id_for
from stanch.harness.ports import free_port
from stanch.models.config import ApiRole, ApiToken, ConfigError, parse_config
from stanch.models.incident import PlanRequest
from stanch.models.secret_reference import UnresolvedSecret, resolve_secret
from stanch.stores.policy import load_config
from stanch.testing.started import Started
from stanch.workflows.escalation import tier_recipients
from tests.support.alerts import unique_alert
from tests.support.plans import API_TOKENS, policy_file
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict:
    return yaml.safe_load((ROOT / "stanch.yaml").read_text())


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    return error.value.problems


def test_shipped_policies_are_valid():
    for path in (ROOT / "stanch.yaml", ROOT / "examples" / "demo.yaml"):
        load_config(path)


def test_unknown_person_is_named_by_path():
    data = base()
    data["escalation_policies"]["default"]["tiers"][1]["people"] = ["carol", "zed"]
    assert problems(data) == [
        "escalation_policies.default.tiers[1].people[1]: 'zed' is not on the roster"
    ]


def test_type_errors_and_typos_are_named_by_path():
    data = base()
    data["escalation_policies"]["default"]["tiers"][0]["timeout"] = "soon"
    data["roster"][0]["rolez"] = ["x"]
    found = problems(data)
    assert any(
        p.startswith("escalation_policies.default.tiers[0].timeout: ") and "soon" in p
        for p in found
    )
    assert any(p.startswith("roster[0].rolez: ") for p in found)


def test_channel_and_schedule_references():
    data = base()
    data["escalation_policies"]["default"]["channels"] = ["nowhere"]
    data["schedules"]["primary"]["rotation"] = ["alice", "ghost"]
    found = problems(data)
    assert "escalation_policies.default.channels[0]: no channel named 'nowhere'" in found
    assert "schedules.primary.rotation[1]: 'ghost' is not on the roster" in found


def test_service_matching_and_schedules():
    config = parse_config(base())
    vm = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1"
    plan = build_plan(config, PlanRequest(rule="cpu", targets=[vm]))
    assert plan.service == "compute" and plan.policy_name == "default"
    other = build_plan(
        config, PlanRequest(rule="x", targets=["/subscriptions/s/providers/microsoft.web/sites/a"])
    )
    assert other.service == "default"
    monday = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    tier = plan.policy.tiers[0]
    assert [p.id for p in tier_recipients(plan, tier, monday)] == ["alice"]
    assert [p.id for p in tier_recipients(plan, tier, monday + timedelta(days=7))] == ["bob"]
    assert [p.id for p in tier_recipients(plan, tier, monday + timedelta(days=14))] == ["alice"]


def test_config_check_cli_exit_codes(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "config", "check", str(ROOT / "stanch.yaml")],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    data = base()
    data["escalation_policies"]["default"]["tiers"][0]["schedules"] = ["nightshift"]
    bad = tmp_path / "stanch.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "config", "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        "escalation_policies.default.tiers[0].schedules[0]: no schedule named 'nightshift'"
        in result.stderr
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("roster: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "config", "check", str(broken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "line" in result.stderr


# --- The policy file fails closed (review #1, #15) -------------------------------

LONG = "x" * 40  # a token long enough to be accepted


def check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`stanch config check FILE` as an operator runs it, with only `env` added
    to an environment free of stanch's own variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STANCH_", "SEC_"))}
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "config", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env},
        timeout=60,
    )


def policy_with(tmp_path: Path, **sections: object) -> Path:
    data = base()
    data.update(sections)
    path = tmp_path / "stanch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tokens(*entries: tuple[str, str, str]) -> dict:
    return {"tokens": [{"person": p, "role": r, "token": t} for p, r, t in entries]}


BAD_FILES: dict[str, tuple[dict, dict[str, str], list[str]]] = {
    # kind: (sections, environment, what stderr must say)
    "unset variable (#1)": (
        {
            "access": tokens(
                ("alice", "responder", "${SEC_TOKEN_ALICE}"),
                ("bob", "viewer", "${SEC_TOKEN_BOB}"),
                ("dave", "admin", "${STANCH_TOKEN_DAVE}"),
            )
        },
        {"SEC_TOKEN_ALICE": "a" * 40, "SEC_TOKEN_BOB": "b" * 40},
        ["access.tokens[2].token: ${STANCH_TOKEN_DAVE} is not set"],
    ),
    "empty variable": (
        {"access": tokens(("alice", "responder", "${SEC_TOKEN_ALICE}"))},
        {"SEC_TOKEN_ALICE": ""},
        ["access.tokens[0].token: ${SEC_TOKEN_ALICE} is set but empty"],
    ),
    "variable not alone": (
        {"access": tokens(("alice", "responder", "tok-${SEC_TOKEN_ALICE}-" + LONG))},
        {"SEC_TOKEN_ALICE": "a" * 40},
        ["access.tokens[0].token: holds a '$' but is not exactly ${NAME} (SEC_TOKEN_ALICE)"],
    ),
    "short token": (
        {"access": tokens(("bob", "admin", "short"), ("alice", "viewer", "${SEC_SHORT}"))},
        {"SEC_SHORT": "s" * 31},
        [
            "access.tokens[0].token: 5 characters; an API token needs at least 32",
            "access.tokens[1].token: 31 characters; an API token needs at least 32",
        ],
    ),
    "one token for two people": (
        {
            "access": tokens(
                ("bob", "admin", "${SEC_TOKEN_BOB}"),
                ("carol", "approver", LONG),
                ("alice", "viewer", "${SEC_TOKEN_ALICE}"),
            )
        },
        {"SEC_TOKEN_BOB": "t" * 40, "SEC_TOKEN_ALICE": "t" * 40},
        ["access.tokens[2].token: the same token as access.tokens[0].token"],
    ),
    "unset client secret and webhook url": (
        {
            "access": {
                "oidc": {
                    "issuer": "https://login.example.com/t/v2.0",
                    "audience": "api://stanch",
                    "roles": {"Stanch.Viewer": "viewer"},
                    "client_secret": "${SEC_OIDC_SECRET}",
                }
            },
            "channels": [
                {"name": "pager-file", "type": "file", "path": "pages.jsonl"},
                {"name": "hook", "type": "webhook", "url": "${SEC_HOOK_URL}"},
            ],
        },
        {},
        [
            "access.oidc.client_secret: ${SEC_OIDC_SECRET} is not set",
            "channels[1].url: ${SEC_HOOK_URL} is not set",
        ],
    ),
    "ids given twice": (
        {
            "roster": [
                {"id": "alice", "oidc_subject": "0b1c"},
                {"id": "bob", "oidc_subject": "0b1c"},
                {"id": "carol"},
                {"id": "dave"},
                {"id": "alice"},
            ],
            "channels": [
                {"name": "pager-file", "type": "file", "path": "a.jsonl"},
                {"name": "pager-file", "type": "file", "path": "b.jsonl"},
            ],
            "services": [
                {"name": "compute", "escalation_policy": "default"},
                {"name": "compute", "escalation_policy": "default"},
            ],
            "detectors": [
                {"name": "errors", "resource_id": "/s/x", "query": "T"},
                {"name": "errors", "resource_id": "/s/y", "query": "T"},
            ],
        },
        {},
        [
            "roster[4].id: person 'alice' is also roster[0].id",
            "roster[1].oidc_subject: oidc_subject '0b1c' is also roster[0].oidc_subject",
            "channels[1].name: channel 'pager-file' is also channels[0].name",
            "services[1].name: service 'compute' is also services[0].name",
            "detectors[1].name: detector 'errors' is also detectors[0].name",
        ],
    ),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_config_check_refuses_each_kind_of_bad_file_by_path(tmp_path, kind):
    sections, env, says = BAD_FILES[kind]
    result = check(policy_with(tmp_path, **sections), **env)
    assert result.returncode == 2, result.stdout + result.stderr
    for line in says:
        assert line in result.stderr, result.stderr
    for value in env.values():  # a secret's value is never printed
        assert not value or value not in result.stdout + result.stderr


def test_duplicate_yaml_keys_at_any_depth_are_refused_with_both_lines(tmp_path):
    """Review #15: a second `escalation_policies:` silently replaced the first."""
    text = (ROOT / "stanch.yaml").read_text()
    path = tmp_path / "stanch.yaml"
    path.write_text(
        text
        + "\nescalation_policies:\n  default:\n    tiers:\n      - {people: [bob]}\n"
        + "incident:\n  reopen_window: 5m\n  reopen_window: 10m\n"
    )
    first = 1 + text.splitlines().index("escalation_policies:")
    total = len(text.splitlines())
    result = check(path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"line {total + 2}: duplicate key 'escalation_policies' (first at line {first})"
        in result.stderr
    )
    assert f"line {total + 8}: duplicate key 'reopen_window' (first at line {total + 7})" in (
        result.stderr
    )
    # Keys that repeat only by merging (`<<`) are what merging is for.
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        text.replace("incident:\n", "incident: &plain\n", 1)
        + "\nx-incident:\n  <<: *plain\n  reopen_window: 1h\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(merged)
    assert all("duplicate" not in p for p in refused.value.problems)  # only the unknown key


def test_the_reviews_dangerous_file_is_refused_whole(tmp_path):
    """The file of review #15, which `config check` called ok."""
    path = tmp_path / "dup.yaml"
    path.write_text(
        "roster: [{id: alice}, {id: bob}]\n"
        "escalation_policies:\n  default: {tiers: [{people: [alice]}]}\n"
        "access:\n  tokens:\n"
        "    - {person: bob, role: admin, token: '${NOT_SET_ANYWHERE}'}\n"
        "    - {person: bob, role: admin, token: short}\n"
        "    - {person: alice, role: viewer, token: short}\n"
        "channels:\n"
        "  - {name: hook, type: webhook, url: '${NOT_SET_EITHER}'}\n"
        "  - {name: hook, type: file, path: p.jsonl}\n"
    )
    result = check(path)
    assert result.returncode == 2
    for line in (
        "access.tokens[0].token: ${NOT_SET_ANYWHERE} is not set",
        "access.tokens[1].token: 5 characters",
        "access.tokens[2].token: 5 characters",
        "channels[1].name: channel 'hook' is also channels[0].name",
        "channels[0].url: ${NOT_SET_EITHER} is not set",
    ):
        assert line in result.stderr, result.stderr
    path.write_text(
        path.read_text() + "escalation_policies:\n  default: {tiers: [{people: [bob]}]}\n"
    )
    result = check(path)
    assert result.returncode == 2 and "duplicate key 'escalation_policies'" in result.stderr


def test_config_check_warns_about_risky_but_valid_choices(tmp_path):
    oidc = {
        "issuer": "https://login.example.com/t/v2.0",
        "audience": "api://stanch",
        "roles": {"Stanch.Viewer": "viewer"},
        "trust_mutable_names": True,
    }
    path = policy_with(tmp_path, access={**tokens(("alice", "viewer", LONG)), "oidc": oidc})
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert "warning: access.tokens[0].token: written in the file" in result.stderr
    assert "warning: access.oidc.trust_mutable_names: people without oidc_subject" in (
        result.stderr
    )
    assert LONG not in result.stdout + result.stderr
    del oidc["trust_mutable_names"]
    path = policy_with(tmp_path, access={"oidc": oidc})
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert "warning: roster[0]: alice has no oidc_subject" in result.stderr


def test_a_secret_resolves_only_from_the_exact_form():
    env = {"A": "value-a"}
    assert resolve_secret("${A}", env) == "value-a"
    assert resolve_secret("literal-token", env) == "literal-token"
    for refused in ("${B}", "$A", "${A}${A}", " ${A}", "pre${A}", "${A", "$"):
        with pytest.raises(UnresolvedSecret):
            resolve_secret(refused, env)
    # Where the policy holds an unusable token, the token admits nobody.
    entry = ApiToken(person="dave", role=ApiRole.ADMIN, token=SecretStr("${SURELY_UNSET_VAR}"))
    assert entry.resolved() is None
    assert ApiToken(person="dave", role=ApiRole.ADMIN, token=SecretStr("short")).resolved() is None


# --- ... and so do the gateway and the worker that load it (review #1) ----------


def refused_connection(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_the_gateway_refuses_to_start_on_an_unset_variable(tmp_path, monkeypatch):
    from stanch.gateway.server import serve_gateway
    from stanch.models.settings import Settings

    monkeypatch.delenv("SEC_TOKEN_DAVE_UNSET", raising=False)
    config = policy_file(tmp_path, access=tokens(("dave", "admin", "${SEC_TOKEN_DAVE_UNSET}")))
    port = free_port()
    settings = Settings(
        temporal_address="127.0.0.1:1",  # never reached: the policy stops it first
        config=config,
        alert_token=SecretStr("intake-" + LONG),
        state_dir=tmp_path,
    )
    with pytest.raises(ConfigError) as refused:
        await serve_gateway(settings, "127.0.0.1", port, asyncio.Event())
    assert "access.tokens[0].token: ${SEC_TOKEN_DAVE_UNSET} is not set" in refused.value.problems
    assert refused_connection(port), "nothing may listen"


@pytest.mark.parametrize("service", ["gateway", "worker"])
def test_stanch_gateway_and_worker_exit_2_naming_the_path(tmp_path, service):
    config = policy_file(tmp_path, access=tokens(("dave", "admin", "${SEC_TOKEN_DAVE_UNSET}")))
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STANCH_", "SEC_"))}
    env = {
        **clean,
        "STANCH_CONFIG": str(config),
        "STANCH_ALERT_TOKEN": "intake-" + LONG,
        "STANCH_STATE_DIR": str(tmp_path),
        "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    if "STANCH_DECISION_KEY" in os.environ:  # the gateway's signing key, so only the policy fails
        env["STANCH_DECISION_KEY"] = os.environ["STANCH_DECISION_KEY"]
    args = ["--port", str(port)] if service == "gateway" else []
    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", service, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "access.tokens[0].token: ${SEC_TOKEN_DAVE_UNSET} is not set" in result.stderr
    assert refused_connection(port)


async def test_the_literal_variable_text_is_no_token(
    stack: Stack, caplog, monkeypatch, started: Started
):
    """Review #1 reproduced: a token added as `${SEC_TOKEN_DAVE_UNSET}` with the
    variable unset answered 200 to `Bearer ${SEC_TOKEN_DAVE_UNSET}`, and its
    note went onto the timeline as dave's."""
    monkeypatch.delenv("SEC_TOKEN_DAVE_UNSET", raising=False)
    literal = {"Authorization": "Bearer ${SEC_TOKEN_DAVE_UNSET}"}
    viewer = {"Authorization": f"Bearer {API_TOKENS['viewer']}"}
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await stack.post_alert(http, unique_alert())
        assert opened.status_code == 202, opened.text
        incident = opened.json()["incident_id"]
        history = stack.client.get_workflow_handle(workflow_id_for(incident))
        started.add(history)
        base_url = f"{stack.url}/api/incidents/{incident}"
        assert (await http.get(base_url, headers=viewer)).status_code == 200

        # The edit of the review: dave gets an admin token from an unset variable.
        data = yaml.safe_load(stack.config.read_text())
        data["access"]["tokens"].append(
            {"person": "dave", "role": "admin", "token": "${SEC_TOKEN_DAVE_UNSET}"}
        )
        stack.config.write_text(yaml.safe_dump(data))

        listing = await http.get(f"{stack.url}/api/incidents", headers=literal)
        note = await http.post(f"{base_url}/notes", json={"text": "dave was here"}, headers=literal)
        assert listing.status_code == 401 and note.status_code == 401, note.text
        # The last valid policy stays in force, and says why at every use.
        assert (await http.get(base_url, headers=viewer)).status_code == 200
        assert "access.tokens[4].token: ${SEC_TOKEN_DAVE_UNSET} is not set" in caplog.text
        assert "keeping the last valid version" in caplog.text

        # The incident goes on (plan, pages), but no update ever reached it.
        events = [e async for e in history.fetch_history_events()]
        updates = [
            e for e in events if e.HasField("workflow_execution_update_accepted_event_attributes")
        ]
        assert updates == [], "a refused call changed nothing"
        detail = (await http.get(base_url, headers=viewer)).json()
        assert all("dave was here" not in e["summary"] for e in detail["timeline"])
