"""The pool workloads of the bench end to end, on tiny sizes.

``pool_map_tiny``, ``pool_chunk1``, ``apply_async``, ``seed_numpy`` and ``big_payload`` run
through ``python -m ferroproc bench`` with the hidden ``--impls stdlib,stdlib`` and
``--peers`` (each peer measured when installed, reported missing otherwise); once with a
stand-in whose ``Pool`` loses a result, to see the checks fail every row; with
implementations that have no ``Pool`` and without NumPy, to see the rows skipped rather
than failed; and against ferroproc's ``Pool`` when it exists. No figure is asserted.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from _bench_support import report_rows
from _bench_support import run_bench as bench
from ferroproc.bench.workloads._pools import pool_default_chunksize

pytestmark = pytest.mark.timeout(300)

WORKLOADS = "pool_map_tiny,pool_chunk1,apply_async,seed_numpy,big_payload"
NUMPY_WORKLOADS = ("seed_numpy", "big_payload")
TINY = ("--quick", "--repeat", "1", "--scale", "0.05")
ROWS = {
    ("pool_map_tiny", "square"),
    ("pool_chunk1", "square"),
    ("apply_async", "square"),
    ("seed_numpy", "100k_chunks"),
    ("seed_numpy", "8_chunks"),
    ("big_payload", "8MB_arrays"),
}
# Peer label → import name, per workload.
PEERS = {
    "pool_map_tiny": {
        "loky chunksize=1000": "loky",
        "mpire": "mpire",
        "joblib": "joblib",
        "concurrent.futures chunksize=1000": "concurrent.futures",
        "concurrent.futures chunksize=1 (default)": "concurrent.futures",
    },
    "pool_chunk1": {
        "concurrent.futures": "concurrent.futures",
        "mpire chunk_size=1": "mpire",
        "loky": "loky",
    },
    "apply_async": {"concurrent.futures submit": "concurrent.futures"},
    "seed_numpy": {"loky (Pool's chunksize)": "loky", "mpire": "mpire"},
    "big_payload": {
        "loky (Pool's chunksize)": "loky",
        "mpire": "mpire",
        "joblib (memmapping)": "joblib",
    },
}

# A Pool that loses the last result of every map, and gets task 3 of apply_async wrong.
LOSSY = """
import importlib

_pool = importlib.import_module("multiprocessing.pool")


class Pool(_pool.Pool):
    def map(self, func, iterable, chunksize=None):
        return super().map(func, iterable, chunksize)[:-1]

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        if args == (3,):
            args = (4,)
        return super().apply_async(func, args, kwds, callback, error_callback)
"""

# A numpy that is not there.
NO_NUMPY = "raise ImportError('no numpy in this test')\n"


def _table(stdout: str) -> str:
    """The main table of a plain-text report."""
    return stdout.split("\n\n")[1]


@pytest.mark.skipif(find_spec("numpy") is None, reason="the NumPy workloads need numpy")
def test_pool_workloads_run_against_the_stdlib_and_peers(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = bench(
        tmp_path,
        "--only",
        WORKLOADS,
        *TINY,
        "--impls",
        "stdlib,stdlib",
        "--peers",
        "--output",
        str(report),
    )
    assert done.returncode == 0, done
    assert "items/s: higher is better" in done.stdout
    assert "tasks/s: higher is better" in done.stdout
    assert "s: lower is better" in done.stdout
    assert "GB/s: higher is better; the medians in s converted" in done.stdout
    assert "peer vs stdlib" in done.stdout

    rows = report_rows(report)
    assert set(rows) == ROWS
    assert rows["pool_map_tiny", "square"]["params"] == {
        "processes": 2,
        "count": 10_000,
        "capped_count": 250,
    }
    assert rows["pool_chunk1", "square"]["params"] == {"processes": 2, "count": 250}
    assert rows["apply_async", "square"]["params"] == {"processes": 2, "count": 250}
    assert rows["seed_numpy", "100k_chunks"]["params"] == {
        "processes": 2,
        "elements": 10_000,
        "chunks": 1_000,
    }
    assert rows["seed_numpy", "8_chunks"]["params"]["chunks"] == 8
    assert rows["big_payload", "8MB_arrays"]["params"] == {
        "processes": 2,
        "arrays": 1,
        "elements": 1_000_000,
    }
    for key, row in rows.items():
        workload = key[0]
        assert row["status"] == "ok", key
        roles = [s["role"] for s in row["subjects"]]
        assert roles[:2] == ["baseline", "candidate"]
        assert (roles[-1] == "floor") == (workload in NUMPY_WORKLOADS), key
        for subject in row["subjects"]:
            assert subject["status"] == "ok", (key, subject)
            assert subject["median"] > 0
        installed = {
            label for label, module in PEERS[workload].items() if find_spec(module) is not None
        }
        assert set(row["peers"]) == installed, key
        assert set(row["peers_vs_baseline"]) == installed, key
        assert all(ratio > 0 for ratio in row["peers_vs_baseline"].values()), key
        for label in PEERS[workload]:
            if label not in installed:
                assert f"peer {label} ({workload}) is not installed" in done.stdout
    for key in (("seed_numpy", "100k_chunks"), ("big_payload", "8MB_arrays")):
        assert rows[key]["floor_ratio"] > 0
    also = rows["big_payload", "8MB_arrays"]["also"]
    assert also["unit"] == "GB/s"
    assert set(also["medians"]) == {
        s["label"] for s in rows["big_payload", "8MB_arrays"]["subjects"]
    }
    assert all(value > 0 for value in also["medians"].values())
    assert "in other units:" in done.stdout
    capped = "concurrent.futures chunksize=1 (default)"
    if capped in rows["pool_map_tiny", "square"]["peers"]:
        assert f"the peer {capped} maps 250 items, not 10,000" in done.stdout


def test_a_lost_result_fails_every_row(tmp_path: Path) -> None:
    (tmp_path / "lossy_pool.py").write_text(LOSSY)
    only = WORKLOADS if find_spec("numpy") is not None else "pool_map_tiny,pool_chunk1,apply_async"
    done = bench(tmp_path, "--only", only, *TINY, "--impls", "stdlib,lossy=lossy_pool")
    assert done.returncode == 1, done
    expected_failures = 6 if find_spec("numpy") is not None else 3
    assert _table(done.stdout).count("FAILED") == expected_failures, done.stdout
    assert "check failed: map returned 9999 results for 10000 items" in done.stdout
    assert "check failed: map returned 249 results for 250 items" in done.stdout
    assert "check failed: got 250 results for 250 tasks" in done.stdout
    if find_spec("numpy") is not None:
        assert "check failed: map returned 999 results for 1000 chunks" in done.stdout
        assert "check failed: map returned 7 results for 8 chunks" in done.stdout
        assert "check failed: map returned 0 results for 1 arrays" in done.stdout


def test_an_implementation_without_pool_is_skipped(tmp_path: Path) -> None:
    done = bench(
        tmp_path, "--only", "pool_chunk1,apply_async", *TINY, "--impls", "stdlib,nopool=json"
    )
    assert done.returncode == 0, done
    table = _table(done.stdout)
    assert table.count("SKIPPED") == 2, done.stdout
    assert "ERROR" not in done.stdout
    assert (
        "SKIPPED in pool_chunk1/square, apply_async/square (nopool): json.Pool not available"
        in done.stdout
    )


def test_without_numpy_the_numpy_workloads_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text(NO_NUMPY)
    report = tmp_path / "report.json"
    done = bench(
        tmp_path,
        "--only",
        ",".join(NUMPY_WORKLOADS),
        *TINY,
        "--impls",
        "stdlib,stdlib",
        "--output",
        str(report),
    )
    assert done.returncode == 0, done
    assert "numpy is not installed (pip install numpy): seed_numpy needs it" in done.stdout
    assert "numpy is not installed (pip install numpy): big_payload needs it" in done.stdout
    for key, row in report_rows(report).items():
        assert row["status"] == "skipped", key
        assert {s["status"] for s in row["subjects"]} == {"skipped"}, key


def test_pool_default_chunksize_is_the_stdlibs() -> None:
    # multiprocessing.pool.Pool._map_async: divmod(len, 4 * processes), rounded up.
    assert pool_default_chunksize(1_000_000, 2) == 125_000
    assert pool_default_chunksize(100_000, 2) == 12_500
    assert pool_default_chunksize(100_001, 2) == 12_501
    assert pool_default_chunksize(32, 2) == 4
    assert pool_default_chunksize(8, 2) == 1
    assert pool_default_chunksize(3, 2) == 1


def _ferroproc_pool_missing() -> str | None:
    """Why ferroproc's ``Pool`` cannot be benchmarked yet, or ``None`` when it can."""
    try:
        import ferroproc
    except ImportError as exc:
        return f"ferroproc does not import ({exc})"
    if not hasattr(ferroproc, "Pool"):
        return "ferroproc.Pool is not there yet"
    return None


def test_ferroproc_poolreport_rows(tmp_path: Path) -> None:
    missing = _ferroproc_pool_missing()
    if missing is not None:
        pytest.skip(missing)
    report = tmp_path / "report.json"
    only = WORKLOADS if find_spec("numpy") is not None else "pool_map_tiny,pool_chunk1,apply_async"
    done = bench(
        tmp_path, "--only", only, *TINY, "--impls", "stdlib,ferroproc", "--output", str(report)
    )
    assert done.returncode == 0, done
    # Without --peers the capped peer is not in the row, and neither is its note.
    assert "maps 250 items" not in done.stdout
    for key, row in report_rows(report).items():
        assert row["status"] == "ok", key
        assert row["speedup"] > 0
