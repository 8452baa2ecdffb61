"""A real process that can be started, killed (kill -9), started again with the
same command line and stopped gracefully, its output appended to one log.

Whoever starts it may die without stopping it (pytest SIGKILLed, a Ctrl-\\ on
`stanch dev`): on Linux the kernel then sends the process `parent_death`, so
no server outlives the run that started it."""

from __future__ import annotations

import asyncio
import ctypes
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# Loaded once here: the child calls prctl between fork and exec, where it must
# not import anything.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn: the child gets `sig` when its parent dies."""
    if _LIBC is None:
        return None
    libc, number = _LIBC, int(sig)

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, number)

    return arm


class Process:
    """One OS process of a stack: `temporal server start-dev`, `stanch worker`,
    `stanch gateway`, `stanch sim`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        own_session: bool = False,
        parent_death: signal.Signals = signal.SIGKILL,
    ) -> None:
        self.name, self.argv, self.env, self.cwd, self.log = name, argv, env, cwd, log
        # Own session: a Ctrl-C in the terminal reaches only whoever started it,
        # which then stops it in order.
        self.own_session = own_session
        self.parent_death = parent_death
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    async def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=self.own_session,
                preexec_fn=die_with_parent(self.parent_death),
            )
        self.starts += 1

    async def kill(self) -> None:
        """kill -9: no drain, no goodbye to the server."""
        if self.process is not None and self.running:
            self.process.kill()
            await self.process.wait()

    async def stop(self, grace: float = 20, sig: signal.Signals = signal.SIGTERM) -> None:
        """`sig`, then SIGKILL if it has not exited within `grace` seconds."""
        if self.process is None or not self.running:
            return
        self.process.send_signal(sig)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            await self.kill()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
