"""What a benchmark run needs around it: the peers' venvs under /tmp/uvicorn-bench (never the
project's .venv, where `uvicorn` is this checkout), the load generators' Debian packages, the
interpreter that runs our server, and what the machine is."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[2]
VENVS = Path("/tmp/uvicorn-bench")
TOOLS = {"wrk": "wrk", "h2load": "nghttp2-client", "curl": "curl", "openssl": "openssl",
         "valgrind": "valgrind"}  # command: Debian package


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def venv(name: str, packages: list[str], base_python: str) -> Path:
    """/tmp/uvicorn-bench/<name> with `packages`, created on first use, reused afterwards, and
    completed with pip when a run needs a package it does not have yet."""
    path = VENVS / name
    stamp = path / "bench-packages.txt"
    have = stamp.read_text().split() if stamp.exists() else []
    missing = [p for p in packages if p not in have]
    if have and not missing:
        return path
    log(f"installing {' '.join(missing)} into {path}")
    if not have:
        subprocess.run([base_python, "-m", "venv", "--clear", str(path)], check=True)
    subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *missing], check=True)  # fmt: skip
    stamp.write_text(" ".join(have + missing))
    return path


def versions(paths: list[Path]) -> str:
    """The servers' versions in those venvs (their dist-info folders): 'uvicorn 0.55.0, ...'."""
    names = ("uvicorn", "zttp", "granian", "hypercorn")
    found = [info.name.removesuffix(".dist-info").replace("-", " ", 1) for path in paths
             for info in sorted(path.glob("lib/python*/site-packages/*.dist-info"))
             if info.name.split("-")[0].lower() in names]  # fmt: skip
    return ", ".join(found)


def install_tools(commands: list[str]) -> None:
    """The load generators' Debian packages (TOOLS), as root or through sudo."""
    packages = [TOOLS[c] for c in commands if shutil.which(c) is None]
    if not packages:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    what = f"apt-get install -y {' '.join(packages)}"
    if shutil.which("apt-get") is None or (sudo and shutil.which("sudo") is None):
        sys.exit(f"missing: {', '.join(packages)}: install them (Debian: {what}) and run again")
    log(f"installing {' '.join(packages)} ({what})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        if subprocess.run([*sudo, *step], env=env).returncode != 0:
            sys.exit(f"could not install {what} ({' '.join(step)} failed): install, run again")


def our_python() -> str:
    """The project's .venv, else this interpreter, provided it imports uvicorn from the checkout."""
    for python in (CHECKOUT / ".venv" / "bin" / "python", Path(sys.executable)):
        if not python.exists():
            continue
        found = subprocess.run([str(python), "-c", "import uvicorn; print(uvicorn.__file__)"],
                               cwd=CHECKOUT, capture_output=True, text=True)  # fmt: skip
        if found.stdout.strip().startswith(str(CHECKOUT / "uvicorn")):
            return str(python)
    sys.exit(f"no interpreter imports uvicorn from {CHECKOUT}: run ./scripts/test once "
             "(it creates .venv) or `pip install -e .`")  # fmt: skip


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}  # fmt: skip
