"""Running ``python -m ferroproc`` the way the benchmark tests do, and reading its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_ferroproc(
    tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 280
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ferroproc ARGS`` in ``tmp_path`` (also put on PYTHONPATH, so that
    stand-in modules written there can be benchmarked), with the implementations the
    arguments name rather than any chosen in the environment."""
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), env.get("PYTHONPATH")) if p)
    env.pop("FERROPROC_BENCH_IMPLS", None)
    return subprocess.run(
        [sys.executable, "-m", "ferroproc", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ferroproc bench ARGS`` in ``tmp_path``."""
    return run_ferroproc(tmp_path, "bench", *args)


def report_rows(report: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows of a JSON report, by (workload, variant)."""
    data: dict[str, Any] = json.loads(report.read_text())
    return {(row["workload"], row["variant"]): row for row in data["results"]}
