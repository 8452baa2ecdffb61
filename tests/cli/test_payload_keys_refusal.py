"""A broken payload key file stops a process before it talks to Temporal: exit 2
naming the setting and the problem, never a traceback, never a plaintext
fallback (the process would otherwise send incident data unencrypted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_with_a_broken_key_file_exits_2_naming_it(tmp_path: Path):
    keys = tmp_path / "payload-keys"
    keys.write_text("not a mapping\n")
    keys.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env |= {
        "STANCH_PAYLOAD_KEYS_FILE": str(keys),
        "STANCH_CONFIG": str(ROOT / "stanch.yaml"),
        "STANCH_STATE_DIR": str(tmp_path / "state"),
        # Nothing listens here: the refusal must come before any connection.
        "STANCH_TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "worker"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"STANCH_PAYLOAD_KEYS_FILE {keys}" in result.stderr
    assert "Traceback" not in result.stderr
