"""What a run was measured on: machine, interpreter, and the ferroproc source."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def _cpu_model() -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), if it says."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip()
    return None


def _usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity mask), where the platform says."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return None


def _ferroproc_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("ferroproc")
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The commit of the source tree ferroproc runs from, if it is a git checkout.

    Read-only: ``git rev-parse`` with optional locks off, so it never touches the index.
    """
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def describe() -> dict[str, object]:
    """Return the machine and interpreter facts every report carries."""
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": _usable_cpus(),
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
        "python_executable": sys.executable,
        "ferroproc_version": _ferroproc_version(),
        "git_commit": _git_commit(),
    }


def summary(info: dict[str, object]) -> str:
    """One line for report headers: platform, cores, interpreter."""
    cores = f"{info.get('cpu_count')} cores"
    usable = info.get("usable_cpus")
    if usable is not None and usable != info.get("cpu_count"):
        cores += f" ({usable} usable)"
    model = info.get("cpu_model")
    cpu = f"{model}, {cores}" if model else cores
    python = f"{info.get('python_implementation')} {info.get('python_version')}"
    return f"{info.get('platform')}; {cpu}; {python}"
