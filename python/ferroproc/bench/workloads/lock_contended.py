"""``lock_contended``: 2 processes increment one shared ``Value('i')`` under its lock.

Unit: increments per second, both processes together (higher is better). Each trial
makes ``v = ctx.Value('i', 0)`` in the ``fork`` context (Linux's default start method),
starts ``procs`` processes running :func:`increment`, and waits until every one of them
is started and waiting on a raw ``os.pipe``. Then it releases them all at once and each
does, as users write it::

    for _ in range(count):
        with v.get_lock():
            v.value += 1

and writes ``time.perf_counter()`` (``CLOCK_MONOTONIC``, the same clock in every process)
to another raw pipe when done. The figure is ``procs * count`` over the time from the
release to the last process's end: process start-up, exit and join are not in it, and
the signalling uses no primitive of the implementation under test.

Check: every process exited with 0, ``v.value == procs * count`` exactly (a lost update
fails the row), and ``v.get_lock().acquire(False)`` succeeds afterwards.

No floor. Target: at least the stdlib's rate.
"""

from __future__ import annotations

import os
import struct
import time

from ferroproc.bench.workloads._gate import check_exit_codes, positive_int, put_away, read_exactly

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Increments per process per trial, (full, --quick).
COUNT = (200_000, 50_000)
#: How the finishing time travels from a child to the trial.
_STAMP = struct.Struct("d")


def increment(v: Any, count: int, ready_w: int, go_r: int, done_w: int) -> None:
    """The target of each process: say ready, wait for go, increment, send the end time."""
    os.write(ready_w, b"r")
    if os.read(go_r, 1) != b"g":
        raise RuntimeError("the trial went away before the start signal")
    for _ in range(count):
        with v.get_lock():
            v.value += 1
    os.write(done_w, _STAMP.pack(time.perf_counter()))


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``procs`` processes each doing ``count`` locked increments; return increments/s."""
    from ferroproc.bench.workloads._base import CheckFailed

    del impl  # every implementation is driven through the stdlib's API
    count = positive_int(params, "count")
    procs = positive_int(params, "procs")
    ctx = module.get_context(str(params["method"]))
    v = ctx.Value("i", 0)

    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    workers = [
        ctx.Process(target=increment, args=(v, count, ready_w, go_r, done_w)) for _ in range(procs)
    ]
    measured = False
    try:
        for worker in workers:
            worker.start()
        # Only the children write to these now: end of file once every one of them is gone.
        os.close(ready_w)
        os.close(done_w)
        ready_w = done_w = -1
        read_exactly(ready_r, procs, "the processes' ready signals")
        started = time.perf_counter()
        os.write(go_w, b"g" * procs)
        stamps = read_exactly(done_r, procs * _STAMP.size, "the processes' end times")
        finished = float(max(stamp for (stamp,) in _STAMP.iter_unpack(stamps)))
        measured = True
    finally:
        put_away(workers, (ready_r, ready_w, go_r, go_w, done_r, done_w), measured=measured)
    check_exit_codes(workers)
    expected = procs * count
    if v.value != expected:
        raise CheckFailed(f"final value {v.value}, expected {expected}: increments were lost")
    lock = v.get_lock()
    if lock.acquire(False) is not True:
        raise CheckFailed("the value's lock is still held after every process ended")
    lock.release()
    return expected / (finished - started)


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    return [
        Variant(
            "2procs",
            {"method": "fork", "procs": 2, "count": sizing.count(*COUNT)},
            target=Target("baseline", 1.0),
        )
    ]


def workload() -> Workload:
    """Describe ``lock_contended`` for the registry."""
    from ferroproc.bench.workloads._base import Workload

    return Workload(
        name="lock_contended",
        description="2 processes each increment a Value('i') under its lock; count checked",
        unit="incr/s",
        better="higher",
        variants=_variants,
        run=run,
        order=60,
    )
