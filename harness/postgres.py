"""A throwaway PostgreSQL server for tests, drills and `stanch dev --database`:
Debian's server binaries, a fresh cluster in a temporary folder, a random port,
its unix socket in that folder, stopped and removed when done.

PostgreSQL refuses to run as root, so as root the cluster belongs to the
`postgres` user (`runuser -u postgres`), in a folder of its own under the
system's temporary directory (a pytest tmp_path sits in folders only root may
enter). Trust authentication on loopback: nothing outside this machine, or
outside the namespace it is bound in, can reach it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from stanch.harness.ports import free_port

SUPERUSER = "postgres"
_DEBIAN = Path("/usr/lib/postgresql")


class PostgresMissing(LookupError):
    """No PostgreSQL server binaries here: `make postgresql` installs Debian's."""


def server_binaries() -> Path:
    """The folder holding initdb and pg_ctl: Debian's newest, else whatever PATH has."""
    if _DEBIAN.is_dir():
        versions = sorted(
            (p for p in _DEBIAN.iterdir() if (p / "bin" / "initdb").is_file()),
            key=lambda p: int(p.name) if p.name.isdigit() else 0,
        )
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresMissing(
        "PostgreSQL's server is not installed: `make postgresql` "
        "(apt-get install postgresql) installs it"
    )


class PostgresServer:
    """One cluster: `start()`, `stop()` and `start()` again on the same data
    (a restart, as a failover or a maintenance window does), `remove()`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        launcher: Sequence[str] = (),
        clients: str | None = None,
    ) -> None:
        """`launcher` runs each of its tools (`ip netns exec NS`: a server on a
        host of its own); `clients` is a network (CIDR) also trusted, beside
        loopback, for a server other hosts reach."""
        self.host = host
        self.port = port or free_port(host)
        self.launcher = list(launcher)
        self.clients = clients
        self.bin = server_binaries()
        self._as_root = os.geteuid() == 0
        # Its own folder under the system tmp dir: the postgres user must be able to enter it.
        self.root = Path(tempfile.mkdtemp(prefix="stanch-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self._as_root:
            account = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._initialised = False

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        if not self.data.is_dir():
            return False
        status = self._run("pg_ctl", "-D", str(self.data), "status", check=False)
        return status.returncode == 0

    def start(self) -> PostgresServer:
        if not self._initialised:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8")
            if self.clients:
                with (self.data / "pg_hba.conf").open("a") as hba:
                    hba.write(f"host all all {self.clients} trust\n")
            self._initialised = True
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
            "-c fsync=off -c max_connections=200"  # throwaway data: no fsync needed
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        """Fast shutdown: open sessions are cut, as when the server goes away."""
        if self.data.is_dir() and self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A fresh, empty database on this server; returns its URL."""
        self._run(
            "psql", "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-q", "-c", f'CREATE DATABASE "{name}"',
        )  # fmt: skip
        return self.url_for(name)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        path = self.bin / tool
        argv = [str(path) if path.exists() else tool, *args]
        if self._as_root:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        argv = [*self.launcher, *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root, timeout=120)
        if check and done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr or done.stdout}\n{tail}"
            )
        return done


@contextlib.contextmanager
def running_postgres(host: str = "127.0.0.1") -> Iterator[PostgresServer]:
    server = PostgresServer(host=host)
    try:
        yield server.start()
    finally:
        server.remove()
