"""``apply_async``: ``count`` ``pool.apply_async(square, (i,))``, then ``.get()`` each.

Unit: tasks per second (higher is better). Each trial starts a pool of 2 workers and
warms it up with a small untimed map (``_pools.py`` says how), then times::

    handles = [pool.apply_async(square, (i,)) for i in range(count)]   # count = 20,000
    results = [handle.get() for handle in handles]

All tasks are submitted before the first result is waited for, so the pool can keep both
workers busy; this measures what one submitted task costs end to end.

Check (untimed): the results are exactly ``[i * i for i in range(count)]``, in order.

Peer (``--peers``): ``concurrent.futures``' ``ProcessPoolExecutor``, the same shape with
``executor.submit(square, i)`` and ``future.result()``.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Tasks submitted per trial, (full, --quick).
COUNT = (20_000, 5_000)
#: Items of the untimed warm-up map.
WARM_UP = 16
#: Peer name → library (see ``_pools.LIBRARIES``).
PEERS = {"concurrent.futures submit": "concurrent.futures"}


def square(x: int) -> int:
    """The submitted function: as small as a task gets."""
    return x * x


def worker_pid(delay: float) -> int:
    """The warm-up's probe (``_pools.warm_up``): sleep ``delay`` s, return this worker's pid."""
    time.sleep(delay)
    return os.getpid()


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``count`` ``apply_async`` + ``get``; return tasks per second."""
    from ferroproc.bench.workloads import _gate, _pools
    from ferroproc.bench.workloads._base import CheckFailed

    library = PEERS.get(impl, "pool")
    count = _gate.positive_int(params, "count")
    processes = _gate.positive_int(params, "processes")
    items = range(count)
    expected = [x * x for x in items]

    pool = _pools.open_pool(library, module, processes)
    try:
        _pools.warm_up(pool, worker_pid, square, range(WARM_UP), chunksize=1, processes=processes)
        seconds, results = _pools.timed(lambda: pool.apply_each(square, items))
    finally:
        pool.close()

    if results != expected:
        raise CheckFailed(
            f"got {len(results)} results for {count} tasks, not [i * i for i in range(count)]"
        )
    return count / seconds


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    params = {"processes": 2, "count": sizing.count(*COUNT)}
    return [Variant("square", params, target=Target("baseline", 3.0))]


def workload() -> Workload:
    """Describe ``apply_async`` for the registry."""
    from ferroproc.bench.workloads._base import Peer, Workload

    return Workload(
        name="apply_async",
        description="count pool.apply_async(square, (i,)), then get() each, on a warm"
        " 2-worker pool; every result checked",
        unit="tasks/s",
        better="higher",
        variants=_variants,
        run=run,
        peers=tuple(Peer(name, library) for name, library in PEERS.items()),
        order=82,
    )
