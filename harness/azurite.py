"""Azurite, Microsoft's Azure Storage emulator (the `azurite` package of the npm
registry), for evidence in Blob Storage: installed once into a cache outside
the repository, run as `azurite-blob` on a free loopback port with in-memory
storage, stopped when done.

`python -m stanch.harness.azurite` installs it (`make test` does, before the
tests), so nothing downloads while tests run; a test that finds it missing
installs it itself. Node.js and npm come from the system (Debian's `nodejs`
and `npm`, which the Makefile installs when missing).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from stanch.harness.binaries import NotInstalled
from stanch.harness.ports import free_port
from stanch.harness.processes import Process
from stanch.harness.waiting import eventually

PACKAGE = "azurite@3"
# Azurite's well-known development account and its published key (not a secret:
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_home() -> Path:
    """Where it is installed: $STANCH_AZURITE_HOME, else the user's cache
    (shared by every checkout, outside every repository)."""
    if home := os.environ.get("STANCH_AZURITE_HOME"):
        return Path(home)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "stanch" / "azurite"


def azurite_blob(home: Path | None = None) -> Path:
    """The installed `azurite-blob`; NotInstalled if it is not there yet."""
    path = (home or azurite_home()) / "node_modules" / ".bin" / "azurite-blob"
    if not path.exists():
        raise NotInstalled(
            f"azurite-blob is not installed in {path.parents[2]}: python -m stanch.harness.azurite"
        )
    return path


def install_azurite(home: Path | None = None) -> Path:
    """`azurite-blob`, installed from the npm registry unless it is there."""
    home = home or azurite_home()
    try:
        return azurite_blob(home)
    except NotInstalled:
        pass
    npm = shutil.which("npm")
    if npm is None:
        raise NotInstalled(
            "npm is not installed, and Azurite comes from the npm registry: "
            "apt-get install nodejs npm (make test does)"
        )
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", PACKAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return azurite_blob(home)


class Azurite(Process):
    """`azurite-blob` with in-memory storage on a free port, logging to
    `<directory>/azurite.log`."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        argv = [
            str(azurite_blob()),
            "--inMemoryPersistence",
            "--blobHost",
            host,
            "--blobPort",
            str(self.port),
            # Any client version: the Storage SDK may be newer than Azurite.
            "--skipApiVersionCheck",
        ]
        super().__init__(
            "azurite",
            argv,
            log=directory / "azurite.log",
            cwd=directory,
            parent_death=signal.SIGKILL,
        )

    @property
    def account_url(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    async def ready(self, timeout: float = 30) -> None:
        """Once it answers HTTP (an anonymous request is refused: it is up)."""

        async def answers() -> bool:
            if not self.running:
                raise RuntimeError(f"azurite exited with {self.returncode}:\n{self.tail()}")
            async with httpx.AsyncClient(timeout=2) as http:
                try:
                    await http.get(f"{self.account_url}?comp=list")
                except httpx.HTTPError:
                    return False
            return True

        await eventually(answers, timeout, f"azurite at {self.account_url}", every=0.1)


@asynccontextmanager
async def running_azurite(directory: Path) -> AsyncIterator[Azurite]:
    """Azurite installed (if it was not), started, answering; stopped after."""
    await asyncio.to_thread(install_azurite)
    server = Azurite(directory)
    await server.start()
    try:
        await server.ready()
        yield server
    finally:
        await server.stop(grace=5)


if __name__ == "__main__":
    print(install_azurite(), file=sys.stderr)
