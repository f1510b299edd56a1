"""``value_rw``: reads and writes of a shared ``Value('d').value`` in one process.

Unit: nanoseconds per operation (lower is better), where one operation is one read or
one write of ``.value``. Each trial makes the value, runs ``count // 100`` operations
untimed to warm up, sets it back to 0.0, then times ``count // 2`` iterations of::

    v.value += 1.0

each of which is one read and one write, so 2 operations: ``count`` operations in all,
half reads and half writes. Check: the final ``v.value`` is exactly ``count // 2``
(whole numbers are exact in a double); with a lock, it is free afterwards
(``v.get_lock().acquire(False)`` succeeds).

Variants:

- ``lock``: ``Value('d', 0.0)``, the default ``lock=True`` users get: every read and
  every write takes and releases the value's lock (the stdlib's: an ``RLock``);
- ``raw``: ``RawValue('d', 0.0)``, no lock: the cost of the shared memory access itself.

Floor (both variants): the same loop over a plain, unshared ``ctypes.c_double``, which
is what the stdlib's ``RawValue`` is, in ordinary memory.

Targets: the issue sets none; the ``lock`` variant is shown against ``>=1.00x speedup``
(no slower than the stdlib), the ``raw`` variant against none.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Operations (reads + writes) timed per trial, (full, --quick).
COUNT = (1_000_000, 200_000)


def _count(params: Params) -> int:
    count = params["count"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 2:
        raise ValueError(f"count must be an int of at least 2, not {count!r}")
    return count


def _time_ops(what: str, v: Any, count: int) -> float:
    """Warm up, time ``count`` reads and writes of ``v.value``; return ns per operation."""
    from ferroproc.bench.workloads._base import CheckFailed

    for _ in range(max(1, count // 200)):
        v.value += 1.0
    v.value = 0.0
    iterations = count // 2
    started = time.perf_counter()
    for _ in range(iterations):
        v.value += 1.0
    elapsed = time.perf_counter() - started
    final = v.value
    if final != float(iterations):
        raise CheckFailed(f"{what}: final value {final!r}, expected {float(iterations)!r}")
    return elapsed / (2 * iterations) * 1e9


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``count`` reads and writes of a ``Value``'s (or ``RawValue``'s) ``.value``."""
    from ferroproc.bench.workloads._base import CheckFailed

    del impl  # every implementation is driven through the stdlib's API
    count = _count(params)
    if params["kind"] == "raw":
        return _time_ops("RawValue('d')", module.RawValue("d", 0.0), count)
    v = module.Value("d", 0.0)
    figure = _time_ops("Value('d')", v, count)
    lock = v.get_lock()
    if lock.acquire(False) is not True:
        raise CheckFailed("Value('d'): its lock is still held after the loop")
    lock.release()
    return figure


def _plain_double(params: Params) -> float:
    """Floor: the same loop over an unshared ``ctypes.c_double``."""
    import ctypes

    return _time_ops("ctypes.c_double", ctypes.c_double(0.0), _count(params))


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    count = sizing.count(*COUNT)
    return [
        Variant(
            "lock",
            {"kind": "lock", "count": count},
            floor="ctypes",
            target=Target("baseline", 1.0),
        ),
        Variant("raw", {"kind": "raw", "count": count}, floor="ctypes"),
    ]


def workload() -> Workload:
    """Describe ``value_rw`` for the registry."""
    from ferroproc.bench.workloads._base import Floor, Workload

    return Workload(
        name="value_rw",
        description="v.value += 1.0 on Value('d') (lock) / RawValue('d') (raw): 1 read + 1 write",
        unit="ns/op",
        better="lower",
        variants=_variants,
        run=run,
        floors={
            "ctypes": Floor(
                "ctypes", "the same loop on an unshared ctypes.c_double", _plain_double
            ),
        },
        order=70,
    )
