"""The ``pipe_pingpong`` workload of the bench end to end, on a tiny size.

It runs through ``python -m ferroproc bench`` with the hidden ``--impls stdlib,stdlib``
(so it does not depend on ferroproc's own ``Pipe``), then with ferroproc as the candidate,
and once with a stand-in whose connection echoes the wrong bytes, to see the check fail
the row. No figure is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _bench_support import run_ferroproc as bench

pytestmark = pytest.mark.timeout(300)

# A Pipe whose replies are never the message sent.
GARBLED_PIPE = """
import multiprocessing as _mp


class _Garbled:
    def __init__(self, conn):
        self._conn = conn

    def send_bytes(self, data):
        self._conn.send_bytes(data)

    def recv_bytes(self):
        return self._conn.recv_bytes()[::-1] + b"?"

    def close(self):
        self._conn.close()


class _Context:
    def __init__(self, method):
        self._ctx = _mp.get_context(method)
        self.Process = self._ctx.Process

    def Pipe(self):
        a, b = self._ctx.Pipe()
        return _Garbled(a), b


def get_context(method=None):
    return _Context(method)
"""


@pytest.mark.parametrize("impls", ["stdlib,stdlib", None])
def test_pipe_pingpong_runs(tmp_path: Path, impls: str | None) -> None:
    js = tmp_path / "report.json"
    args = ["bench", "--only", "pipe_pingpong", "--quick", "--repeat", "1", "--scale", "0.05"]
    if impls is not None:
        args += ["--impls", impls]
    done = bench(tmp_path, *args, "--output", str(js))
    assert done.returncode == 0, done
    assert "us/rt: lower is better" in done.stdout

    data: dict[str, Any] = json.loads(js.read_text())
    assert data["ok"] is True
    rows = {(row["workload"], row["variant"]): row for row in data["results"]}
    assert set(rows) == {("pipe_pingpong", "8B")}
    row = rows["pipe_pingpong", "8B"]
    assert row["params"] == {"method": "fork", "count": 500, "warmup": 200}
    assert row["better"] == "lower"
    assert row["status"] == "ok"
    assert row["speedup"] > 0
    roles = [s["role"] for s in row["subjects"]]
    assert roles == ["baseline", "candidate", "floor"]
    for subject in row["subjects"]:
        assert subject["status"] == "ok"
        assert subject["median"] > 0


def test_a_pipe_that_garbles_replies_fails_the_row(tmp_path: Path) -> None:
    (tmp_path / "garbled_pipe_mp.py").write_text(GARBLED_PIPE)
    done = bench(
        tmp_path,
        "bench",
        "--only",
        "pipe_pingpong",
        "--repeat",
        "1",
        "--scale",
        "0.001",
        "--impls",
        "stdlib,broken=garbled_pipe_mp",
    )
    assert done.returncode == 1, done
    assert "FAILED" in done.stdout
    assert "the reply is not the message sent" in done.stdout
