"""`stanch dev --state-dir X` keeps the stack's pages in X and tells other
shells how to find it (review: pages went to ./.stanch/pages.jsonl, and every
CLI call needed --state-dir again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stanch.harness.waiting import wait_until
from tests.support.dev_stack import ROOT, running_dev_stack

ALERT = ROOT / "examples" / "alerts" / "test_action_resource_health.json"


def stanch_in_shell(
    workdir: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`stanch ...` typed in another shell of the same folder: no --state-dir."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**clean, **env},
        timeout=60,
    )


def test_the_shipped_policys_pages_land_in_the_state_dir(tmp_path: Path):
    with running_dev_stack(tmp_path, policy=ROOT / "stanch.yaml") as stack:
        state = stack.state.resolve()
        wait_until(lambda: "STANCH_STATE_DIR" in stack.output(), 30, "the banner")
        export = f"export STANCH_STATE_DIR={state}"
        assert export in stack.output(), stack.output()[-3000:]

        lost = stanch_in_shell(tmp_path, {}, "alert", "send", str(ALERT))
        assert lost.returncode == 2 and "STANCH_ALERT_TOKEN" in lost.stderr, lost

        shell = {"STANCH_STATE_DIR": str(state)}  # what the banner says to export
        sent = stanch_in_shell(tmp_path, shell, "alert", "send", str(ALERT))
        assert sent.returncode == 0, sent.stderr
        incident = json.loads(sent.stdout)["incident_id"]

        pages = state / "pages.jsonl"

        def paged() -> bool:
            lines = pages.read_text().splitlines() if pages.exists() else []
            return any(json.loads(line)["incident_id"] == incident for line in lines)

        wait_until(paged, 60, f"a page for {incident} in {pages}")
        assert not (tmp_path / ".stanch").exists(), "nothing written to ./.stanch"

        # The first tier's page is due later: it reads as such.
        shown = stanch_in_shell(tmp_path, shell, "show", incident)
        assert shown.returncode == 0, shown.stderr
        (next_page,) = [line for line in shown.stdout.splitlines() if "next page:" in line]
        assert "(in " in next_page and " ago)" not in next_page, shown.stdout


def test_the_default_state_dir_prints_no_export_line(tmp_path: Path, monkeypatch):
    from stanch.cli.dev import elsewhere_line

    monkeypatch.chdir(tmp_path)
    assert elsewhere_line(Path(".stanch")) == ""
    assert elsewhere_line(tmp_path / ".stanch") == ""
    assert (
        elsewhere_line(Path("x y")) == f"  other shells export STANCH_STATE_DIR='{tmp_path}/x y'\n"
    )
