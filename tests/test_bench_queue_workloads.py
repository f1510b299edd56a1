"""The queue workloads of the bench end to end, on tiny sizes.

``queue_small`` and ``queue_large`` run through ``python -m ferroproc bench`` with the
hidden ``--impls stdlib,stdlib`` and ``--peers`` (the stdlib's ``SimpleQueue`` and
``Pipe`` are always there; faster-fifo is measured when installed and reported missing
otherwise), once with a stand-in whose ``Queue`` drops a message, to see the checks fail
the rows, and once against ferroproc's ``Queue`` when it exists. No figure is asserted.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from _bench_support import report_rows
from _bench_support import run_bench as bench

pytestmark = pytest.mark.timeout(300)

WORKLOADS = "queue_small,queue_large"
TINY = ("--quick", "--repeat", "1", "--scale", "0.05")

# A Queue that silently drops the third message each process puts.
LOSSY = """
import importlib

_mp = importlib.import_module("multiprocessing")
_queues = importlib.import_module("multiprocessing.queues")


class LossyQueue(_queues.Queue):
    _puts = 0

    def put(self, obj, block=True, timeout=None):
        self._puts += 1
        if self._puts != 3:
            super().put(obj, block, timeout)


class _Context:
    def __init__(self, method):
        self._ctx = _mp.get_context(method)

    def Process(self, *args, **kwargs):
        return self._ctx.Process(*args, **kwargs)

    def Queue(self, maxsize=0):
        return LossyQueue(maxsize, ctx=self._ctx)


def get_context(method=None):
    return _Context(method)
"""


def test_queue_workloads_run_against_the_stdlib_and_peers(tmp_path: Path) -> None:
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
    assert "msg/s: higher is better" in done.stdout
    assert "GB/s: higher is better" in done.stdout

    rows = report_rows(report)
    assert set(rows) == {
        ("queue_small", "1to1"),
        ("queue_small", "1to1_many"),
        ("queue_small", "2to2"),
        ("queue_small", "2to2_many"),
        ("queue_large", "1to1"),
    }
    assert rows["queue_small", "2to2_many"]["params"] == {
        "method": "fork",
        "producers": 2,
        "consumers": 2,
        "count": 5_000,
        "api": "many",
        "batch": 1_000,
    }
    assert rows["queue_large", "1to1"]["params"]["count"] == 10
    fifo = find_spec("faster_fifo") is not None
    expected_peers = {
        ("queue_small", "1to1"): {"SimpleQueue", "Pipe"} | ({"faster-fifo"} if fifo else set()),
        ("queue_small", "1to1_many"): {"faster-fifo get_many"} if fifo else set(),
        ("queue_small", "2to2"): {"SimpleQueue"} | ({"faster-fifo"} if fifo else set()),
        ("queue_small", "2to2_many"): {"faster-fifo get_many"} if fifo else set(),
        ("queue_large", "1to1"): {"Pipe.send_bytes"} | ({"faster-fifo"} if fifo else set()),
    }
    for key, row in rows.items():
        assert row["status"] == "ok", key
        assert set(row["peers"]) == expected_peers[key]
        for subject in row["subjects"]:
            assert subject["status"] == "ok", (key, subject)
            assert subject["median"] > 0
        roles = [s["role"] for s in row["subjects"]]
        assert roles[:2] == ["baseline", "candidate"]
        assert roles[-1] == "floor"
    if not fifo:
        assert "peer faster-fifo (queue_small) is not installed" in done.stdout


def test_a_lost_message_fails_every_row(tmp_path: Path) -> None:
    (tmp_path / "lossy_mp.py").write_text(LOSSY)
    done = bench(tmp_path, "--only", WORKLOADS, *TINY, "--impls", "stdlib,lossy=lossy_mp")
    assert done.returncode == 1, done
    table = done.stdout.split("\n\n")[1]
    assert table.count("FAILED") == 5, done.stdout
    assert "the consumers got 4999 messages" in done.stdout
    assert "the consumers got 4998 messages" in done.stdout  # 2 producers, 1 loss each
    assert "the consumer got 9 messages of 10" in done.stdout


def test_list_shows_which_rows_each_peer_runs_in(tmp_path: Path) -> None:
    done = bench(tmp_path, "--list")
    assert done.returncode == 0, done
    assert "faster-fifo get_many (1to1_many, 2to2_many)" in done.stdout
    assert "Pipe (1to1)" in done.stdout


def _ferroproc_queue_missing() -> str | None:
    """Why ferroproc's ``Queue`` cannot be benchmarked yet, or ``None`` when it can."""
    try:
        import ferroproc

        queue = ferroproc.Queue()
    except (ImportError, AttributeError, NotImplementedError) as exc:
        return f"ferroproc.Queue is not there yet ({type(exc).__name__}: {exc})"
    try:
        if not (hasattr(queue, "put_many") and hasattr(queue, "get_many")):
            return "ferroproc.Queue has no put_many/get_many yet"
    finally:
        queue.close()
    return None


def test_ferroproc_queuereport_rows(tmp_path: Path) -> None:
    missing = _ferroproc_queue_missing()
    if missing is not None:
        pytest.skip(missing)
    report = tmp_path / "report.json"
    done = bench(
        tmp_path, "--only", WORKLOADS, *TINY, "--impls", "stdlib,ferroproc", "--output", str(report)
    )
    assert done.returncode == 0, done
    for key, row in report_rows(report).items():
        assert row["status"] == "ok", key
        assert row["speedup"] > 0
