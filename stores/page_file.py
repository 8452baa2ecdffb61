"""The file sink's pages.jsonl: append a page once per key, whatever the file holds.

A retried page must not be written twice, so each append looks its key up
first. Scanning the whole file for that would cost more with every page and
stop at the first damaged line, so the keys live in an index in memory, fed by
reading only what was appended since the last look (other processes append
too, under the same lock). A damaged line (a crash mid-append, a hand edit:
partial, not JSON, not an object) holds no key and is skipped; a partial last
line is ended with a newline before the next record, so it never swallows it.

The index remembers recent keys only: a page is retried within its
activity's schedule-to-close timeout (minutes), so a key older than the last
`WINDOW` bytes or `MAX_KEYS` pages can no longer be asked for.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

WINDOW = 16 * 1024 * 1024  # read on first use: far more pages than a retry can span
MAX_KEYS = 100_000


class PageFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._identity: tuple[int, int] | None = None
        self._offset = 0  # bytes of whole lines already indexed

    def append_once(self, key: str, record: dict[str, Any]) -> bool:
        """Appends `record` under `key` unless the file holds that key; True if written."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Private from the first byte: pages name people, services and resources.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            unterminated = self._catch_up(f)
            if key in self._keys:
                return False
            line = json.dumps({"key": key, **record}).encode() + b"\n"
            f.write((b"\n" if unterminated else b"") + line)
            f.flush()
            self._offset = f.tell()
            self._remember(key)
            return True

    def _catch_up(self, f: BinaryIO) -> bool:
        """Indexes the lines appended since the last call; True if the file ends mid-line."""
        stat = os.fstat(f.fileno())
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            # First use, or the file was rotated or truncated: start over.
            self._identity, self._keys = identity, {}
            self._offset = max(0, stat.st_size - WINDOW)
            if self._offset:
                f.seek(self._offset - 1)
                if f.read(1) != b"\n":
                    f.readline()  # the window starts mid-line: that line is not whole
                    self._offset = f.tell()
        f.seek(self._offset)
        data = f.read()
        end = data.rfind(b"\n") + 1
        for raw in data[:end].splitlines():
            if (key := _key_of(raw)) is not None:
                self._remember(key)
        self._offset += end
        return end < len(data)

    def _remember(self, key: str) -> None:
        self._keys[key] = None
        if len(self._keys) > MAX_KEYS:
            del self._keys[next(iter(self._keys))]


def read_pages(path: Path) -> list[dict[str, Any]]:
    """Every page the file holds, oldest first, for whoever reads the sink (a
    drill, a demo, a test): damaged lines are skipped as the index skips them,
    and no file holds no pages."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [page for raw in data.splitlines() if (page := _page_of(raw)) is not None]


def _page_of(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past reason
        return None
    return value if isinstance(value, dict) else None


def _key_of(raw: bytes) -> str | None:
    key = (_page_of(raw) or {}).get("key")
    return key if isinstance(key, str) else None
