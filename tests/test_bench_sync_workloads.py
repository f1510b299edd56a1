"""The synchronisation workloads of the bench end to end, on tiny sizes.

``lock_uncontended``, ``lock_contended`` and ``value_rw`` run through
``python -m ferroproc bench`` with the hidden ``--impls stdlib,stdlib`` (so they do not
depend on ferroproc's own ``Lock`` and ``Value``), and once with a stand-in whose lock
does not lock, to see the check fail the row. No figure is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _bench_support import run_ferroproc as bench

pytestmark = pytest.mark.timeout(300)

WORKLOADS = ("lock_uncontended", "lock_contended", "value_rw")

# A Lock that never locks: acquire(False) on it "succeeds" twice in a row.
NOT_A_LOCK = """
class Lock:
    def acquire(self, block=True, timeout=None):
        return True

    def release(self):
        pass
"""


def test_sync_workloads_run_against_the_stdlib(tmp_path: Path) -> None:
    js = tmp_path / "report.json"
    done = bench(
        tmp_path,
        "bench",
        "--only",
        ",".join(WORKLOADS),
        "--quick",
        "--repeat",
        "1",
        "--scale",
        "0.05",
        "--impls",
        "stdlib,stdlib",
        "--output",
        str(js),
    )
    assert done.returncode == 0, done
    assert "ns/pair: lower is better" in done.stdout
    assert "incr/s: higher is better" in done.stdout
    assert "ns/op: lower is better" in done.stdout
    assert "other floors:" in done.stdout
    assert "floor:threading" in done.stdout

    data: dict[str, Any] = json.loads(js.read_text())
    assert data["ok"] is True
    rows = {(row["workload"], row["variant"]): row for row in data["results"]}
    assert set(rows) == {
        ("lock_uncontended", "pair"),
        ("lock_contended", "2procs"),
        ("value_rw", "lock"),
        ("value_rw", "raw"),
    }
    assert rows["lock_uncontended", "pair"]["params"] == {"count": 10_000}
    assert rows["lock_contended", "2procs"]["params"] == {
        "method": "fork",
        "procs": 2,
        "count": 2_500,
    }
    assert rows["lock_contended", "2procs"]["better"] == "higher"
    for row in rows.values():
        assert row["status"] == "ok"
        assert row["speedup"] > 0
        for subject in row["subjects"]:
            assert subject["status"] == "ok"
            assert subject["median"] > 0
    roles = [s["role"] for s in rows["lock_uncontended", "pair"]["subjects"]]
    assert roles == ["baseline", "candidate", "floor", "other_floor"]
    other = rows["lock_uncontended", "pair"]["other_floors"]
    assert set(other) == {"threading"}
    assert other["threading"]["floor_ratio"] > 0


def test_a_lock_that_does_not_lock_fails_the_row(tmp_path: Path) -> None:
    (tmp_path / "not_a_lock_mp.py").write_text(NOT_A_LOCK)
    done = bench(
        tmp_path,
        "bench",
        "--only",
        "lock_uncontended",
        "--repeat",
        "1",
        "--scale",
        "0.01",
        "--impls",
        "stdlib,broken=not_a_lock_mp",
    )
    assert done.returncode == 1, done
    assert "FAILED" in done.stdout
    assert "acquire(False) on a held lock did not return False" in done.stdout
