"""`stanch access` as a user in another terminal runs it (issue 16, item 1):
a process with a credential, speaking to the real gateway in front of a
worker on the dev server and azuresim. The grant is approved with the
existing `stanch approve ID access-<grant>`, listed with the guests'
contracts, and revoked; refusals exit 2 with the field named and leave
nothing started."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from stanch.azuresim import AzureSim
from stanch.harness.waiting import eventually
from tests.support.access import (
    EXPIRED,
    OPS,
    VENDOR,
    access_stack_policy,
    assignments,
    awaiting_approval,
    end_incident,
    grants_of,
    open_stack_incident,
    role_assignment_writes,
    until_grant,
)
from tests.support.plans import API_TOKENS, policy_file
from tests.support.stack import Stack

# The conftest's `stack`, with the vendor among the guests.
stack_policy = pytest.fixture(access_stack_policy, name="stack_policy")


async def stanch(
    tmp_path: Path, *args: str, role: str | None = None, gateway: str = ""
) -> subprocess.CompletedProcess[str]:
    """The CLI as a process, with the API token `role` holds (none if None).
    In a thread: the gateway it speaks to runs on this test's event loop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config-home")  # never a real `stanch login`
    env["STANCH_GATEWAY_URL"] = gateway
    if role is not None:
        env["STANCH_API_TOKEN"] = API_TOKENS[role]
    command = [sys.executable, "-m", "stanch.cli.main", "--state-dir", str(tmp_path / "none")]
    return await asyncio.to_thread(
        subprocess.run, [*command, *args], capture_output=True, text=True, env=env, timeout=60
    )


async def test_grant_approve_list_and_revoke_from_the_command_line(
    stack: Stack, sim: AzureSim, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_stack_incident(stack, http)
        sim.journal.clear()

        asked = await stanch(
            tmp_path,
            "access", "grant", incident,
            "--to", "contoso-support",
            "--role", "Log Analytics Reader",
            "--scope", OPS,
            "--for", "2h",
            "--reason", "engine logs",
            role="responder",
            gateway=stack.url,
        )  # fmt: skip

        assert asked.returncode == 0, asked.stderr
        # The grant tells its incident once it has read the policy.
        [grant] = await eventually(lambda: grants_of(stack, http, incident), 20, "the grant")
        gate = f"access-{grant['grant_id']}"
        assert f"stanch approve {incident} {gate}" in asked.stdout
        await until_grant(
            stack, http, incident, grant["grant_id"], awaiting_approval, "waiting for approval"
        )

        approved = await stanch(
            tmp_path, "approve", incident, gate, role="approver", gateway=stack.url
        )
        assert approved.returncode == 0, approved.stderr
        await until_grant(
            stack, http, incident, grant["grant_id"], lambda g: g["status"] == "active", "active"
        )
        assert len(assignments(sim)) == 1

        listed = await stanch(
            tmp_path, "access", "list", incident, role="viewer", gateway=stack.url
        )
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if grant["grant_id"] in line)
        assert "active" in row and "contoso-support" in row and row.rstrip().endswith("carol")
        assert OPS in listed.stdout
        assert (
            "contoso-support: Dana Vendor, Contoso Databases Ltd <dana@contoso.example>; "
            "24x7, answers within 1h (CT-4471); entry expires 2099-12-31"
        ) in listed.stdout
        assert "old-vendor" not in listed.stdout  # expired: nothing can be granted to them
        everywhere = await stanch(tmp_path, "access", "list", role="viewer", gateway=stack.url)
        assert everywhere.returncode == 0 and grant["grant_id"] in everywhere.stdout

        viewer = await stanch(
            tmp_path, "access", "revoke", incident, grant["grant_id"], role="viewer",
            gateway=stack.url,
        )  # fmt: skip
        assert viewer.returncode == 2 and "bob is a viewer" in viewer.stderr
        revoked = await stanch(
            tmp_path, "access", "revoke", incident, gate, "--reason", "done",
            role="responder", gateway=stack.url,
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        assert f"access {grant['grant_id']}: ending" in revoked.stdout
        await until_grant(
            stack, http, incident, grant["grant_id"], lambda g: g["status"] == "revoked", "revoked"
        )
        assert assignments(sim) == []
        assert role_assignment_writes(sim) == [("PUT", 201), ("DELETE", 200)]
        again = await stanch(
            tmp_path, "access", "revoke", incident, grant["grant_id"], role="responder",
            gateway=stack.url,
        )  # fmt: skip
        assert again.returncode == 2 and "already revoked" in again.stderr
    await end_incident(stack.client, incident)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--role", "Owner"], "role: 'Owner' may not be granted"),
        (["--for", "5h"], "duration: 5h is longer than the 4h"),
        (["--for", "4"], "--for: not a duration: '4'"),  # a unit is needed
        (["--to", "old-vendor"], "guest: the policy's entry for guest 'old-vendor' expired"),
        (["--scope", "/subscriptions/x/resourceGroups/rg-ops/../rg-hr"], "scope: "),
    ],
)
async def test_refusals_exit_2_naming_the_field_and_start_nothing(
    stack: Stack, sim: AzureSim, tmp_path: Path, flags: list[str], said: str
) -> None:
    wanted = {"--to": "contoso-support", "--role": "Log Analytics Reader", "--scope": OPS}
    wanted |= {"--for": "2h"}
    wanted.update(dict(zip(flags[::2], flags[1::2], strict=True)))
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_stack_incident(stack, http)
        sim.journal.clear()

        refused = await stanch(
            tmp_path,
            "access", "grant", incident,
            *[part for pair in wanted.items() for part in pair],
            role="responder",
            gateway=stack.url,
        )  # fmt: skip

        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert said in refused.stderr
        assert await grants_of(stack, http, incident) == []
        assert [c for c in sim.journal.calls(0) if c["mutation"]] == []
    await end_incident(stack.client, incident)


async def test_config_check_warns_of_guests_expired_or_expiring_soon(tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    expiring = {
        **VENDOR,
        "id": "fabrikam-dba",
        "principal_id": "22222222-1111-2222-3333-444444444444",
        "expires": soon,
    }
    config = policy_file(tmp_path, guests=[VENDOR, EXPIRED, expiring])

    checked = await stanch(tmp_path, "config", "check", str(config))

    assert checked.returncode == 0, checked.stderr
    assert "guests[1].expires: old-vendor expired on 2020-01-31" in checked.stderr
    assert f"guests[2].expires: fabrikam-dba expires on {soon}" in checked.stderr
    assert "contoso-support" not in checked.stderr  # 2099: nothing to say
