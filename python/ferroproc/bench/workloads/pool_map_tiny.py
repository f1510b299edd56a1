"""``pool_map_tiny``: ``pool.map(square, range(count))``, default chunking: per-item overhead.

Unit: items per second (higher is better). Each trial starts a pool of 2 workers and
warms it up with a small untimed map (``_pools.py`` says how), then times one::

    results = pool.map(square, range(count))     # count = 1,000,000

with the implementation's default chunking (the stdlib's: 4 chunks a worker).

Check (untimed): the results are exactly ``[x * x for x in range(count)]``, in order.

Peers (``--peers``), each on the same call:

- ``loky chunksize=1000`` and ``concurrent.futures chunksize=1000``: their ``map`` with
  ``chunksize=1000`` (their default of 1 is the next row), as BENCHMARKS.md compares them;
- ``concurrent.futures chunksize=1 (default)``: ``ProcessPoolExecutor.map`` as users call
  it first. At a few thousand items a second here it would take minutes for 1,000,000
  items, so it maps the first ``capped_count`` ints instead (the row's note says so):
  items a second hardly depend on the count once each item is its own task;
- ``mpire``: ``WorkerPool.map`` with its default chunking (64 chunks a worker);
- ``joblib``: ``Parallel(n_jobs=2)(delayed(square)(x) for x in range(count))``, its
  automatic batching.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Items mapped per trial, (full, --quick).
COUNT = (1_000_000, 200_000)
#: Items mapped by ``concurrent.futures`` with its default chunksize of 1, (full, --quick).
CAPPED_COUNT = (50_000, 5_000)
#: Items of the untimed warm-up map.
WARM_UP = 16
#: Peer name → (library, chunksize, whether it maps ``capped_count`` items).
PEERS: dict[str, tuple[str, int | None, bool]] = {
    "loky chunksize=1000": ("loky", 1000, False),
    "mpire": ("mpire", None, False),
    "joblib": ("joblib", None, False),
    "concurrent.futures chunksize=1000": ("concurrent.futures", 1000, False),
    "concurrent.futures chunksize=1 (default)": ("concurrent.futures", None, True),
}
#: The peer that maps ``capped_count`` items.
CAPPED_PEER = "concurrent.futures chunksize=1 (default)"


def square(x: int) -> int:
    """The mapped function: as small as a task gets."""
    return x * x


def worker_pid(delay: float) -> int:
    """The warm-up's probe (``_pools.warm_up``): sleep ``delay`` s, return this worker's pid."""
    time.sleep(delay)
    return os.getpid()


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time one ``map(square, range(count))`` on a warm pool; return items per second."""
    from ferroproc.bench.workloads import _gate, _pools
    from ferroproc.bench.workloads._base import CheckFailed

    library, chunksize, capped = PEERS.get(impl, ("pool", None, False))
    count = _gate.positive_int(params, "capped_count" if capped else "count")
    processes = _gate.positive_int(params, "processes")
    items = range(count)
    expected = [x * x for x in items]

    pool = _pools.open_pool(library, module, processes)
    try:
        _pools.warm_up(
            pool, worker_pid, square, range(WARM_UP), chunksize=chunksize, processes=processes
        )
        seconds, results = _pools.timed(lambda: pool.map(square, items, chunksize))
    finally:
        pool.close()

    if results != expected:
        wrong = next((i for i, (a, b) in enumerate(zip(results, expected)) if a != b), None)
        raise CheckFailed(
            f"map returned {len(results)} results for {count} items;"
            f" first wrong one at index {wrong if wrong is not None else min(len(results), count)}"
        )
    return count / seconds


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    capped = sizing.count(*CAPPED_COUNT)
    params: Params = {
        "processes": 2,
        "count": sizing.count(*COUNT),
        "capped_count": capped,
    }
    note = (
        f"the peer {CAPPED_PEER} maps {capped:,} items, not {params['count']:,}:"
        " at its rate here the full count would take minutes"
    )
    return [Variant("square", params, notes={CAPPED_PEER: note}, target=Target("baseline", 1.5))]


def workload() -> Workload:
    """Describe ``pool_map_tiny`` for the registry."""
    from ferroproc.bench.workloads._base import Peer, Workload

    return Workload(
        name="pool_map_tiny",
        description="pool.map(square, range(count)) on a warm 2-worker pool, default chunking;"
        " every result checked",
        unit="items/s",
        better="higher",
        variants=_variants,
        run=run,
        peers=tuple(Peer(name, library) for name, (library, _, _) in PEERS.items()),
        order=80,
    )
