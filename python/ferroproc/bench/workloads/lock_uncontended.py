"""``lock_uncontended``: ``Lock()`` acquire + release in one process, nobody else using it.

Unit: nanoseconds per acquire+release pair (lower is better). Each trial makes one
``impl.Lock()`` (the default context's), checks that it locks (``acquire(False)`` fails
while it is held), runs ``count // 100`` pairs untimed to warm up, then times ``count``
pairs written as users write them, attribute look-ups included::

    for _ in range(count):
        lock.acquire()
        lock.release()

and returns the elapsed time over ``count``. The checks, outside the timed loop: every
warm-up ``acquire()`` returns true, and afterwards the lock is free, ``acquire(False)``
takes it, a second ``acquire(False)`` fails, and ``release()`` gives it back.

Floors, measured in the same run with the same loop:

- ``noop`` (the main table's): two calls of a module-level no-op Python function per
  iteration, ``noop(); noop()``: what a pair of calls costs in CPython's loop;
- ``threading`` (the other floors' table): ``threading.Lock()``, the in-process lock,
  the peer BENCHMARKS.md names. On CPython 3.11 it parses its arguments the slow way
  and may come out slower than the stdlib's ``SemLock``.

Target: at least 0.8x the stdlib's rate, i.e. ns per pair at most 1.25x the stdlib's.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Pairs timed per trial, (full, --quick).
COUNT = (1_000_000, 200_000)


def noop() -> None:
    """The no-op floor's callee: do nothing."""


def _count(params: Params) -> int:
    count = params["count"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive int, not {count!r}")
    return count


def _check_locks(what: str, lock: Any) -> None:
    """Raise :class:`CheckFailed` unless ``lock`` is free, and locks when taken."""
    from ferroproc.bench.workloads._base import CheckFailed

    if lock.acquire(False) is not True:
        raise CheckFailed(f"{what}: acquire(False) on a free lock did not return True")
    try:
        if lock.acquire(False) is not False:
            raise CheckFailed(f"{what}: acquire(False) on a held lock did not return False")
    finally:
        lock.release()


def _time_pairs(what: str, lock: Any, count: int) -> float:
    """Warm up, time ``count`` acquire+release pairs of ``lock``; return ns per pair."""
    from ferroproc.bench.workloads._base import CheckFailed

    _check_locks(f"{what} before", lock)
    for _ in range(max(1, count // 100)):
        if not lock.acquire():
            raise CheckFailed(f"{what}: a blocking acquire() did not return True")
        lock.release()
    # Nothing in the timed loop but the pair: the checks on either side cover it.
    started = time.perf_counter()
    for _ in range(count):
        lock.acquire()
        lock.release()
    elapsed = time.perf_counter() - started
    _check_locks(f"{what} after {count} pairs", lock)
    return elapsed / count * 1e9


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``count`` acquire+release pairs of ``module.Lock()``; return ns per pair."""
    del impl  # every implementation is driven through the stdlib's API
    return _time_pairs("Lock", module.Lock(), _count(params))


def _threading_lock(params: Params) -> float:
    """Floor: the same loop over ``threading.Lock()``."""
    import threading

    return _time_pairs("threading.Lock", threading.Lock(), _count(params))


def _noop_pair(params: Params) -> float:
    """Floor: the same loop calling a no-op Python function twice per iteration."""
    count = _count(params)
    for _ in range(max(1, count // 100)):
        noop()
        noop()
    started = time.perf_counter()
    for _ in range(count):
        noop()
        noop()
    elapsed = time.perf_counter() - started
    return elapsed / count * 1e9


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    return [
        Variant(
            "pair",
            {"count": sizing.count(*COUNT)},
            floor="noop",
            target=Target("baseline", 0.8),
            other_floors=("threading",),
        )
    ]


def workload() -> Workload:
    """Describe ``lock_uncontended`` for the registry."""
    from ferroproc.bench.workloads._base import Floor, Workload

    return Workload(
        name="lock_uncontended",
        description="Lock() acquire + release pairs in one process, uncontended",
        unit="ns/pair",
        better="lower",
        variants=_variants,
        run=run,
        floors={
            "noop": Floor("noop", "noop(); noop(): two no-op Python calls per pair", _noop_pair),
            "threading": Floor(
                "threading", "threading.Lock() acquire + release, same loop", _threading_lock
            ),
        },
        order=50,
    )
