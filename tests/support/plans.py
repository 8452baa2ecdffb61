"""stanch.yaml files for tests: the harness's plan with three 15-minute tiers,
and the credentials and runbook binding of the real-stack tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stanch.harness.plans import response_plan
from stanch.testing.estate import SUB


def policy_file(tmp_path: Path, **overrides: Any) -> Path:
    """A three-tier plan: alice, then bob, then carol, 15 minutes each."""
    tiers = [{"people": [who], "timeout": "15m"} for who in ("alice", "bob", "carol")]
    data = response_plan(
        tmp_path / "pages.jsonl",
        tiers,
        # Runbooks may change what azuresim's world and the chaos estate hold;
        # tests of the scopes themselves pass their own.
        remediation={"scopes": [{"subscription": SUB, "resource_groups": ["rg-web", "rg-chaos"]}]},
    )
    data.update(overrides)
    path = tmp_path / "stanch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


API_TOKENS = {  # at least 32 characters, as the policy requires
    "viewer": "tok-bob-viewer-4c1d7e0a9b2f6e35d8",
    "responder": "tok-alice-responder-8f3a6b1c0d9e2",
    "approver": "tok-carol-approver-5e2b9d7c3a0f14",
    "admin": "tok-dave-admin-0b6e4a8d2c7f3915ae",
}
REMEDIATION = {
    "access": {
        "tokens": [
            {"person": "bob", "role": "viewer", "token": API_TOKENS["viewer"]},
            {"person": "alice", "role": "responder", "token": API_TOKENS["responder"]},
            {"person": "carol", "role": "approver", "token": API_TOKENS["approver"]},
            {"person": "dave", "role": "admin", "token": API_TOKENS["admin"]},
        ]
    },
    "approvals": {"tiers": [{"timeout": "15m"}]},
    "runbooks": [
        {"runbook": "quarantine_vm", "match": {"resource_ids": ["*/virtualmachines/vm-web-*"]}}
    ],
}


def auth(role: str) -> dict[str, str]:
    """The Authorization header of the API token `role` holds in REMEDIATION."""
    return {"Authorization": f"Bearer {API_TOKENS[role]}"}
