"""`stanch sim`: azuresim on its own, for drills, demos and exploring the SDKs."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import yaml
from pydantic import ValidationError

from stanch.azuresim import AzureSim, CorruptEstate, World, load_world
from stanch.cli.errors import UsageError
from stanch.cli.packaged import DEFAULT_WORLD
from stanch.models.errors import describe_validation_error


def read_world(path: Path | None) -> World:
    path = path or DEFAULT_WORLD
    try:
        return load_world(path)
    except OSError as e:
        raise UsageError(f"--world: cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"--world: {path} is not YAML: {e}") from None
    except ValidationError as e:
        raise UsageError(
            "\n".join([f"{path}: invalid world", *describe_validation_error(e)])
        ) from None


def start_sim(
    port: int,
    world: Path | None,
    state_dir: Path,
    host: str = "127.0.0.1",
    reset: bool = False,
) -> AzureSim:
    """azuresim on `port`, keeping its estate and journal in `state_dir`: a
    restart carries on from them (`reset` starts again from the world)."""
    try:
        sim = AzureSim(read_world(world), host=host, port=port, state_dir=state_dir, reset=reset)
    except CorruptEstate as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"--port {port}: cannot listen ({e.strerror})") from None
    return sim.start()


def estate_line(sim: AzureSim) -> str:
    """Where the estate came from: said at start, so nobody wonders why a VM
    is still deallocated after a restart."""
    resources = len(sim.state.resources)
    if sim.restored:
        return (
            f"restored from {sim.estate_file} ({resources} resources, "
            f"{len(sim.journal.calls())} journal calls; --reset starts from the world)"
        )
    return f"seeded from the world ({resources} resources), kept in {sim.estate_file}"


def run_sim(
    port: int, world: Path | None, state_dir: Path, host: str = "127.0.0.1", reset: bool = False
) -> int:
    sim = start_sim(port, world, state_dir, host=host, reset=reset)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"azuresim on {sim.url}\n"
        f"  CA       {sim.ca_file} (trust it: STANCH_AZURE_CA_FILE / connection_verify)\n"
        f"  admin    {sim.url}/_admin/journal, /_admin/faults, /_admin/state, /_admin/world, "
        "/_admin/reset\n"
        f"  estate   {estate_line(sim)}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    stop.wait()
    sim.stop()
    return 0
