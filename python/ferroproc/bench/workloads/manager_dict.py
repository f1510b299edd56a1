"""``manager_dict``: 2 processes write, then read back, their own keys of one shared dict.

Unit: operations per second, both processes together (higher is better). Each trial
creates the shared dict (for the stdlib and ferroproc: ``Manager()`` in the ``fork``
context, its server started, then ``manager.dict()``), forks ``procs`` processes running
:func:`write_then_read`, and waits until every one of them is started, has built its
keys, and waits on a raw ``os.pipe``. Then it releases them all at once and process
``w`` of ``procs`` does, as users write it::

    for i in range(count):                  # count = 20,000
        d[f"k{w}-{i}"] = w * count + i      # str keys, small int values (below 40,000)
    for i in range(count):
        d[f"k{w}-{i}"]                      # each read compared with what was written

and writes ``time.perf_counter()`` (``CLOCK_MONOTONIC``, the same clock in every process)
and how many of its reads came back wrong to another raw pipe. The figure is
``procs * count * 2`` operations (80,000) over the time from the release to the last
process's end: creating the dict, starting and joining the processes are not in it, and
the signalling uses no primitive of the implementation under test. The key sets of the
processes are disjoint, so every write must survive.

Check (untimed): every process exited with 0 and read back exactly what it wrote; then
the parent's view of the dict holds every one of the ``procs * count`` keys with its value
and nothing else, and ``len(d)`` says so too. A lost update fails the row: a contender
that cannot keep concurrent writers' updates gets FAILED, not a figure.

Peers (``--peers``), with the stdlib's fork processes:

- ``UltraDict shared_lock=True``: ``UltraDict(shared_lock=True, buffer_size=...)``, the
  setting its docs give for writers in independent processes: an atomic lock in its
  shared memory (it needs the ``atomics`` package), taken by spinning.
- ``UltraDict (RLock, fork)``: ``UltraDict(buffer_size=...)`` with its default lock, a
  ``multiprocessing.RLock`` made by the trial, which the forked processes inherit: as
  correct here as the other (the check holds it to that), and 3-5x faster on the
  2-core machine, so it is the figure the UltraDict target is judged against too.

  Both have their update stream sized to hold every update of the trial
  (:data:`ULTRADICT_BYTES_PER_WRITE` per write), so they never fall back to full dumps of
  the dict, which its docs advise against ("Consider increasing buffer_size").
- ``shared-memory-dict``: ``SharedMemoryDict(name=..., size=...)``. Its lock is a no-op
  unless the environment variable ``SHARED_MEMORY_USE_LOCK=1`` is set when it is
  imported, so the trial sets it, imports the library's lock module again (and checks the
  lock is now a ``multiprocessing.Lock``). Even so it loses updates with two writers
  (0.7.2): its ``_modify_db`` is ``@contextmanager`` over ``@lock`` over a generator
  function, so the lock is held only while the generator object is made, not across the
  read-modify-write of the whole pickled dict that every ``d[k] = v`` is; its row then
  reads FAILED with the keys lost. Each of its operations unpickles (and each write
  re-pickles) the whole dict, so at the full size a trial would take minutes: each
  process does ``capped_count`` writes and reads instead, the row's note says so, and
  since its cost per operation grows with the dict, a figure from it would flatter it.

Targets (issue): ferroproc at least 20x the stdlib's rate (the row's target) and at least
:data:`ULTRADICT_TARGET` times UltraDict's, in both its rows (their ``ferroproc vs
peer`` column; the row's notes say so).
"""

from __future__ import annotations

import os
import struct
import time

from ferroproc.bench.workloads._gate import check_exit_codes, positive_int, put_away, read_exactly

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Writes (and then reads) per process per trial, (full, --quick).
COUNT = (20_000, 5_000)
#: Writes (and reads) per process for shared-memory-dict, (full, --quick).
CAPPED_COUNT = (1_000, 250)
#: UltraDict's peers: label → whether it is made with ``shared_lock=True``.
ULTRADICT_PEERS = {"UltraDict shared_lock=True": True, "UltraDict (RLock, fork)": False}
#: The peer measured on ``capped_count``.
CAPPED_PEER = "shared-memory-dict"
#: Bytes of UltraDict's update stream per write: a pickled (flag, key, value) tuple is
#: about 30 bytes here, plus its 6 bytes of header.
ULTRADICT_BYTES_PER_WRITE = 64
#: The issue's target against UltraDict: ferroproc at least this many times its rate.
ULTRADICT_TARGET = 5.0
#: The issue's target against the stdlib.
STDLIB_TARGET = 20.0
#: How a process's report travels to the trial: its end time and its wrong reads.
_REPORT = struct.Struct("dq")
#: Longest wait for the processes to start or to finish before the trial gives up.
_WAIT_S = 300.0


def key_of(worker: int, i: int) -> str:
    """The key process ``worker`` writes ``i``-th: ``"k{worker}-{i}"``."""
    return f"k{worker}-{i}"


def write_then_read(
    d: Any, worker: int, count: int, *, ready_w: int, go_r: int, done_w: int
) -> None:
    """The target of each process: say ready, wait for go, write, read back, report."""
    base = worker * count
    keys = [key_of(worker, i) for i in range(count)]
    os.write(ready_w, b"r")
    if os.read(go_r, 1) != b"g":
        raise RuntimeError("the trial went away before the start signal")
    for i, key in enumerate(keys):
        d[key] = base + i
    wrong = 0
    for i, key in enumerate(keys):
        try:
            if d[key] != base + i:
                wrong += 1
        except KeyError:
            wrong += 1
    os.write(done_w, _REPORT.pack(time.perf_counter(), wrong))


def _manager_dict(module: ModuleType, method: str) -> tuple[Any, Any, Callable[[], None]]:
    """An implementation's context, its managed dict, and how to shut its manager down."""
    from ferroproc.bench.workloads._base import Skipped

    if getattr(module, "Manager", None) is None:
        raise Skipped(f"{module.__name__}.Manager not available")
    ctx = module.get_context(method)
    try:
        manager = ctx.Manager()
    except NotImplementedError as exc:
        raise Skipped(f"{module.__name__}.Manager not available ({exc})") from exc
    try:
        return ctx, manager.dict(), manager.shutdown
    except BaseException:
        manager.shutdown()
        raise


def _ultradict(
    module: ModuleType, writes: int, *, shared_lock: bool
) -> tuple[Any, Callable[[], None]]:
    """An UltraDict whose update stream holds ``writes`` updates."""
    d = module.UltraDict(
        shared_lock=shared_lock, buffer_size=ULTRADICT_BYTES_PER_WRITE * writes + 4096
    )
    return d, d.unlink


def _shared_memory_dict(expected: dict[str, int]) -> tuple[Any, Callable[[], None]]:
    """A SharedMemoryDict with its lock turned on, big enough for ``expected``."""
    import importlib
    import pickle
    import sys

    from ferroproc.bench.workloads._base import CheckFailed

    # Its lock is chosen when shared_memory_dict.lock is imported: turn it on, then
    # import that module and the one that took its decorator again.
    os.environ["SHARED_MEMORY_USE_LOCK"] = "1"
    lock_module = importlib.reload(importlib.import_module("shared_memory_dict.lock"))
    dict_module = importlib.reload(sys.modules["shared_memory_dict.dict"])
    if type(lock_module._lock).__module__ != "multiprocessing.synchronize":
        raise CheckFailed("SHARED_MEMORY_USE_LOCK=1 did not give shared-memory-dict a real lock")
    size = 2 * len(pickle.dumps(expected)) + 4096
    d = dict_module.SharedMemoryDict(name=f"ferroproc-bench-{os.getpid()}", size=size)

    def close() -> None:
        shm = d.shm
        d.cleanup()
        shm.unlink()

    return d, close


def _lost_updates(d: Any, expected: dict[str, int]) -> str | None:
    """Compare the dict's contents with ``expected``: say what is wrong, or ``None``."""
    seen = dict(d.items())
    missing = [k for k in expected if k not in seen]
    wrong = [k for k in expected if k in seen and seen[k] != expected[k]]
    extra = [k for k in seen if k not in expected]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} keys missing (first {missing[0]!r})")
    if wrong:
        problems.append(f"{len(wrong)} keys with a wrong value (first {wrong[0]!r})")
    if extra:
        problems.append(f"{len(extra)} keys never written (first {extra[0]!r})")
    if not problems:
        size = len(d)
        if size != len(expected):
            problems.append(f"len(d) is {size}, not {len(expected)}")
    if not problems:
        return None
    return "lost updates: " + "; ".join(problems)


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``procs`` processes writing then reading ``count`` keys each; return ops/s."""
    import importlib

    from ferroproc.bench.workloads._base import CheckFailed

    procs = positive_int(params, "procs")
    count = positive_int(params, "capped_count" if impl == CAPPED_PEER else "count")
    expected = {key_of(w, i): w * count + i for w in range(procs) for i in range(count)}
    method = str(params["method"])
    if impl == CAPPED_PEER:
        # The peers have shared dicts only: their processes are the stdlib's.
        ctx = importlib.import_module("multiprocessing").get_context(method)
        d, close = _shared_memory_dict(expected)
    elif impl in ULTRADICT_PEERS:
        ctx = importlib.import_module("multiprocessing").get_context(method)
        d, close = _ultradict(module, len(expected), shared_lock=ULTRADICT_PEERS[impl])
    else:
        ctx, d, close = _manager_dict(module, method)

    try:
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        workers = [
            ctx.Process(
                target=write_then_read,
                args=(d, w, count),
                kwargs={"ready_w": ready_w, "go_r": go_r, "done_w": done_w},
                name=f"writer-{w}",
            )
            for w in range(procs)
        ]
        measured = False
        try:
            for worker in workers:
                worker.start()
            # Only the children write to these now: end of file once every one is gone.
            os.close(ready_w)
            os.close(done_w)
            ready_w = done_w = -1
            read_exactly(ready_r, procs, "the processes' ready signals", workers, _WAIT_S)
            started = time.perf_counter()
            os.write(go_w, b"g" * procs)
            raw = read_exactly(
                done_r, procs * _REPORT.size, "the processes' reports", workers, _WAIT_S
            )
            measured = True
        finally:
            fds = (ready_r, ready_w, go_r, go_w, done_r, done_w)
            put_away(workers, fds, measured=measured, wait_s=_WAIT_S)
        check_exit_codes(workers)
        reports = list(_REPORT.iter_unpack(raw))
        lost = _lost_updates(d, expected)
        if lost is not None:
            raise CheckFailed(lost)
        wrong_reads = sum(wrong for _, wrong in reports)
        if wrong_reads:
            raise CheckFailed(
                f"{wrong_reads} of {len(expected)} reads did not return the value just written"
            )
    finally:
        close()
    finished = float(max(stamp for stamp, _ in reports))
    return 2 * len(expected) / (finished - started)


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    capped = sizing.count(*CAPPED_COUNT)
    params: Params = {
        "method": "fork",
        "procs": 2,
        "count": sizing.count(*COUNT),
        "capped_count": capped,
    }
    notes = {
        # Both UltraDict rows come from one module: both are in the row, or neither.
        "UltraDict (RLock, fork)": "the target against the peer UltraDict, in both its rows:"
        f" ferroproc at least {ULTRADICT_TARGET:g}x its rate (ferroproc vs peer)",
        CAPPED_PEER: f"the peer {CAPPED_PEER} does {capped:,} writes and reads per process,"
        f" not {params['count']:,}: each of its operations (un)pickles the whole dict, so"
        " the full count would take minutes, and on a smaller dict its rate is flattering",
    }
    return [
        Variant("2procs", params, target=Target("baseline", STDLIB_TARGET), notes=notes),
    ]


def workload() -> Workload:
    """Describe ``manager_dict`` for the registry."""
    from ferroproc.bench.workloads._base import Peer, Workload

    return Workload(
        name="manager_dict",
        description="2 processes each write then read back their own keys of a managed dict;"
        " every key and value checked",
        unit="ops/s",
        better="higher",
        variants=_variants,
        run=run,
        peers=(
            *(Peer(label, "UltraDict") for label in ULTRADICT_PEERS),
            Peer(CAPPED_PEER, "shared_memory_dict"),
        ),
        order=90,
    )
