"""A sampling profile of one of the stack's processes while a pass runs:
py-spy (a dev dependency) attached to its pid, raw collapsed stacks written to
the scratch directory, and a summary of where the samples fell, grouped by
what the time was spent on (the groups docs/benchmarks.md's profiles name).

`python -m bench storm --profile gateway` profiles the gateway during each
gateway pass; `python -m bench.profile FILE` summarises a raw file again."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

# (group, substrings of a frame), in priority order: a sample goes to the first
# group with a frame anywhere in its stack, so the log line's json.dumps is
# logging and the route's model_validate is pydantic, while FastAPI and
# Starlette get only the time spent in their own frames and below them.
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("audit trail (append, SQLite, thread hand-off)", ("audit", "sqlite", "to_thread")),
    ("logging", ("logging/", "telemetry.py", "redaction.py")),
    ("OpenTelemetry spans", ("opentelemetry", "trace/__init__")),
    ("prometheus metrics", ("prometheus_client",)),
    ("Temporal client calls (and their payload conversion)", ("temporalio",)),
    ("pydantic: alert validation and serialisation", ("pydantic", "models/alert.py")),
    ("JSON parsing and depth check", ("json/", "orjson", "parse_alert", "depth (")),
    (
        "HTTP: parsing requests, writing responses (h11/httptools, socket)",
        (
            *("h11/", "H11Protocol", "HttpToolsProtocol", "RequestResponseCycle.send"),
            *("_read_ready", "Transport.write"),
        ),
    ),
    (
        "ASGI: FastAPI/Starlette, middleware, request and response objects",
        ("fastapi", "starlette", "web_guard", "proxy_headers"),
    ),
    ("asyncio event loop", ("asyncio/", "uvloop")),
]


# Leaf frames of a thread that is waiting, not working: py-spy's own idle
# detection misses a thread pool's worker blocked on its queue.
IDLE = ("select (", "poll (", "_worker (concurrent/futures/thread.py", "wait (threading.py")


def py_spy() -> str | None:
    return shutil.which("py-spy") or (
        str(Path(sys.executable).parent / "py-spy")
        if (Path(sys.executable).parent / "py-spy").exists()
        else None
    )


class Profiler:
    """py-spy record on `pid` from start() to stop(); `summary()` after."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = py_spy()
        if binary is None:
            raise SystemExit("--profile needs py-spy (pip install -e '.[dev]')")
        argv = [binary, "record", "--pid", str(self.pid), "--rate", str(self.rate)]
        argv += ["--format", "raw", "--nonblocking", "--output", str(self.out)]
        self._process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await asyncio.sleep(0.5)  # attached before the load starts

    async def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            await asyncio.wait_for(self._process.wait(), 30)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


def summarise(raws: list[Path], top: int = 12) -> list[tuple[str, float]]:
    """(group, share of samples) by group over every file, largest first; idle
    samples (a thread waiting in select/epoll) are left out, so the shares are
    of CPU time."""
    groups: Counter[str] = Counter()
    total = 0
    lines = [line for raw in raws if raw.exists() for line in raw.read_text().splitlines()]
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if not frames[-1].strip() or any(idle in frames[-1] for idle in IDLE):
            continue
        count = int(count_text)
        total += count
        groups[_group(frames)] += count
    if not total:
        return []
    return [(name, n / total) for name, n in groups.most_common(top)]


def _group(frames: list[str]) -> str:
    for name, needles in GROUPS:
        if any(n in frame for frame in frames for n in needles):
            return name
    return "other"


def render(raws: list[Path]) -> list[str]:
    """One line per group: `41.0 % FastAPI / Starlette ...`."""
    return [f"{share:6.1%}  {name}" for name, share in summarise(raws)]


if __name__ == "__main__":
    print("\n".join(render([Path(p) for p in sys.argv[1:]])))
