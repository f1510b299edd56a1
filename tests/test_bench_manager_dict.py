"""The ``manager_dict`` workload of the bench end to end, on tiny sizes.

It runs through ``python -m ferroproc bench`` with the hidden ``--impls stdlib,stdlib``
and ``--peers`` (each peer measured when installed, reported missing otherwise); with
stand-ins whose managed dict drops one write, or returns one wrong value, to see the
checks fail the row; with an implementation that has no ``Manager``, to see it skipped;
and against ferroproc's ``Manager`` when it exists. No figure is asserted.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from _bench_support import report_rows
from _bench_support import run_bench as bench

pytestmark = pytest.mark.timeout(300)

TINY = ("--quick", "--repeat", "1", "--scale", "0.05")
# Peer label → import name.
PEERS = {
    "UltraDict shared_lock=True": "UltraDict",
    "UltraDict (RLock, fork)": "UltraDict",
    "shared-memory-dict": "shared_memory_dict",
}

# The stdlib's processes and managed dict, behind a dict that changes one operation:
# DROP is a key whose write never happens, WRONG one whose read returns another value.
STAND_IN = """
import multiprocessing

DROP = {drop!r}
WRONG = {wrong!r}
_ctx = multiprocessing.get_context("fork")


class _Tampered:
    def __init__(self, proxy):
        self._proxy = proxy

    def __setitem__(self, key, value):
        if key != DROP:
            self._proxy[key] = value

    def __getitem__(self, key):
        value = self._proxy[key]
        return value + 1 if key == WRONG else value

    def __len__(self):
        return len(self._proxy)

    def items(self):
        return self._proxy.items()


class Manager:
    def __init__(self):
        self._manager = _ctx.Manager()

    def dict(self):
        return _Tampered(self._manager.dict())

    def shutdown(self):
        self._manager.shutdown()


class _Context:
    Process = _ctx.Process
    Manager = Manager


def get_context(method=None):
    return _Context()
"""


def _row(report: Path) -> dict[str, Any]:
    rows = report_rows(report)
    assert set(rows) == {("manager_dict", "2procs")}
    return rows["manager_dict", "2procs"]


def _table(stdout: str) -> str:
    """The main table of a plain-text report."""
    return stdout.split("\n\n")[1]


def test_manager_dict_runs_against_the_stdlib_and_peers(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = bench(
        tmp_path,
        "--only",
        "manager_dict",
        *TINY,
        "--impls",
        "stdlib,stdlib",
        "--peers",
        "--output",
        str(report),
    )
    assert "ops/s: higher is better" in done.stdout
    row = _row(report)
    assert row["params"] == {"method": "fork", "procs": 2, "count": 250, "capped_count": 12}
    assert row["better"] == "higher"
    subjects = {s["label"]: s for s in row["subjects"]}
    for label in ("stdlib", "stdlib#2"):
        assert subjects[label]["status"] == "ok", subjects[label]
        assert subjects[label]["median"] > 0
    assert row["speedup"] > 0
    assert ">=20.00x speedup" in done.stdout
    installed = {label for label, module in PEERS.items() if find_spec(module) is not None}
    assert {s["label"] for s in row["subjects"] if s["role"] == "peer"} == installed
    for label in PEERS:
        if label not in installed:
            assert f"peer {label} (manager_dict) is not installed" in done.stdout
    for label in ("UltraDict shared_lock=True", "UltraDict (RLock, fork)"):
        if label in installed:
            assert subjects[label]["status"] == "ok", subjects[label]
            assert subjects[label]["median"] > 0
            assert "ferroproc at least 5x its rate" in done.stdout
    # shared-memory-dict's lock does not cover its writes: two writers may lose updates
    # (whether they do on a dozen keys is luck), and then only that says why it failed.
    smd_ok = True
    if "shared-memory-dict" in installed:
        smd = subjects["shared-memory-dict"]
        smd_ok = smd["status"] == "ok"
        if not smd_ok:
            assert smd["status"] == "failed", smd
            assert "check failed: lost updates:" in done.stdout
        assert "the peer shared-memory-dict does 12 writes and reads per process" in done.stdout
    assert done.returncode == (0 if smd_ok else 1), done


def test_a_lost_update_fails_the_row(tmp_path: Path) -> None:
    (tmp_path / "drops_a_write.py").write_text(STAND_IN.format(drop="k1-3", wrong=None))
    done = bench(tmp_path, "--only", "manager_dict", *TINY, "--impls", "stdlib,lossy=drops_a_write")
    assert done.returncode == 1, done
    assert _table(done.stdout).count("FAILED") == 1, done.stdout
    assert "check failed: lost updates: 1 of 500 keys missing (first 'k1-3')" in done.stdout


def test_a_wrong_read_fails_the_row(tmp_path: Path) -> None:
    (tmp_path / "reads_wrong.py").write_text(STAND_IN.format(drop=None, wrong="k0-2"))
    done = bench(tmp_path, "--only", "manager_dict", *TINY, "--impls", "stdlib,wrong=reads_wrong")
    assert done.returncode == 1, done
    assert _table(done.stdout).count("FAILED") == 1, done.stdout
    assert "check failed: 1 of 500 reads did not return the value just written" in done.stdout


def test_an_implementation_without_manager_is_skipped(tmp_path: Path) -> None:
    done = bench(tmp_path, "--only", "manager_dict", *TINY, "--impls", "stdlib,nomanager=json")
    assert done.returncode == 0, done
    assert "SKIPPED" in _table(done.stdout)
    assert "json.Manager not available" in done.stdout


def _ferroproc_manager_missing() -> str | None:
    """Why ferroproc's managed dict cannot be measured yet, or ``None`` when it can."""
    try:
        import ferroproc
    except ImportError as exc:
        return f"ferroproc is not importable ({exc})"
    if getattr(ferroproc, "Manager", None) is None:
        return "ferroproc.Manager is not there yet"
    return None


def test_ferroproc_manager_dict_row(tmp_path: Path) -> None:
    missing = _ferroproc_manager_missing()
    if missing is not None:
        pytest.skip(missing)
    report = tmp_path / "report.json"
    done = bench(
        tmp_path,
        "--only",
        "manager_dict",
        *TINY,
        "--impls",
        "stdlib,ferroproc",
        "--output",
        str(report),
    )
    assert done.returncode == 0, done
    row = _row(report)
    assert row["status"] == "ok"
    assert row["speedup"] > 0
