"""stanch as a user gets it: the wheel built from this checkout, installed
into a clean virtual environment outside the repository. Dependencies are
borrowed from this environment as a plain path, so nothing is downloaded."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shared_wheel(base: Path) -> Path:
    """The wheel, built once for the whole run. Under pytest-xdist every
    worker process has a session of its own: the first to get here builds it
    under a lock in the folder they share (`base`'s parent), the others wait
    and take it."""
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with (folder / "stanch-wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = sorted((folder / "stanch-dist").glob("stanch-*.whl"))
        if built:
            return built[0]
        (folder / "stanch-dist").mkdir(exist_ok=True)
        return build_wheel(folder / "stanch-dist", isolated=False)


def build_wheel(out: Path, isolated: bool) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    if not isolated:
        command.insert(-1, "--no-build-isolation")
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("stanch-*.whl")
    return wheel


def clean_venv_with(wheel: Path, where: Path) -> Path:
    """A new virtual environment holding the wheel alone. Its dependencies are
    borrowed from this environment's site-packages as a plain path (not a site
    dir, so this checkout's editable install is not seen), so that nothing is
    downloaded."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip_install(venv, str(wheel))
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def pip_install(venv: Path, *args: str) -> None:
    """`pip install --no-deps ARGS` into `venv`, with this environment's pip;
    no index is asked (--no-build-isolation builds with what is installed)."""
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


def user_env(venv: Path) -> dict[str, str]:
    """The environment of a user of `venv`: no STANCH_* or Python settings of
    this run; its bin first on PATH, then this environment's (the Temporal
    binaries come from their own wheels here)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("STANCH_", "PYTHON", "VIRTUAL"))
    }
    env["PATH"] = (
        f"{venv / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    )
    return env


def installed_top_level_names(venv: Path) -> set[str]:
    (record,) = venv.glob("lib/python*/site-packages/stanch-*.dist-info/RECORD")
    names = set()
    for line in record.read_text().splitlines():
        first = line.split(",", 1)[0].split("/", 1)[0]
        if first.endswith(".dist-info") or first in ("..", "__pycache__"):
            continue
        names.add(first.removesuffix(".py"))
    return names
