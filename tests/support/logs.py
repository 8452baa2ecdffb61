"""Reading what a stanch process printed: one JSON object per log line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def json_logs(output: Path | str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (a file, or the text itself);
    a line still being written is left out."""
    text = output.read_text() if isinstance(output, Path) else output
    entries = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def logged(output: Path | str, message: str) -> bool:
    return any(entry.get("msg") == message for entry in json_logs(output))
