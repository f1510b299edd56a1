"""``pool_chunk1``: ``pool.map(square, range(count), chunksize=1)``: one task per item.

Unit: tasks per second (higher is better). Each trial starts a pool of 2 workers and
warms it up with a small untimed map (``_pools.py`` says how), then times one::

    results = pool.map(square, range(count), chunksize=1)     # count = 20,000

so every item is a task of its own: this measures what the pool pays per task (sending
it, waking a worker, returning its result), not the function.

Check (untimed): the results are exactly ``[x * x for x in range(count)]``, in order.

Peers (``--peers``), each with one item per task: ``concurrent.futures``'
``ProcessPoolExecutor.map`` and loky's reusable executor (``chunksize=1``, their default),
and mpire's ``WorkerPool.map`` with ``chunk_size=1``.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Items (tasks) mapped per trial, (full, --quick).
COUNT = (20_000, 5_000)
#: Items of the untimed warm-up map.
WARM_UP = 16
#: Peer name → library (see ``_pools.LIBRARIES``).
PEERS = {
    "concurrent.futures": "concurrent.futures",
    "mpire chunk_size=1": "mpire",
    "loky": "loky",
}


def square(x: int) -> int:
    """The mapped function: as small as a task gets."""
    return x * x


def worker_pid(delay: float) -> int:
    """The warm-up's probe (``_pools.warm_up``): sleep ``delay`` s, return this worker's pid."""
    time.sleep(delay)
    return os.getpid()


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time one ``map(square, range(count), chunksize=1)``; return tasks per second."""
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
        seconds, results = _pools.timed(lambda: pool.map(square, items, 1))
    finally:
        pool.close()

    if results != expected:
        raise CheckFailed(
            f"map returned {len(results)} results for {count} items, not [x * x for x in items]"
        )
    return count / seconds


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    params = {"processes": 2, "count": sizing.count(*COUNT)}
    return [Variant("square", params, target=Target("baseline", 3.0))]


def workload() -> Workload:
    """Describe ``pool_chunk1`` for the registry."""
    from ferroproc.bench.workloads._base import Peer, Workload

    return Workload(
        name="pool_chunk1",
        description="pool.map(square, range(count), chunksize=1) on a warm 2-worker pool;"
        " every result checked",
        unit="tasks/s",
        better="higher",
        variants=_variants,
        run=run,
        peers=tuple(Peer(name, library) for name, library in PEERS.items()),
        order=81,
    )
