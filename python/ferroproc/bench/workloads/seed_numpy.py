"""``seed_numpy``: the seed's program: sum a NumPy array in chunks on a pool.

Unit: seconds (lower is better). Each trial builds, untimed::

    data = np.random.rand(elements)              # elements = 1,000,000
    chunks = np.array_split(data, chunks)        # 100,000 chunks, or 8
    expected = np.sum(data)

starts a pool of 2 workers and warms it up (``_pools.py`` says how), then times::

    results = pool.map(chunk_sum, chunks)        # chunk_sum(c) = float(np.sum(c))
    total = sum(results)

What is timed, and why: only the ``pool.map`` call and the final ``sum``. The split is
done before the clock starts, the same for every implementation, peer and the floor: it
is the same NumPy work whoever maps the chunks, so timing it would only dilute the
difference between pools. Pool start-up is not timed either.

Check (untimed): ``len(results) == chunks`` and ``total`` equals ``np.sum(data)`` within
a relative tolerance of :data:`REL_TOL` (the two sum in a different order).

Rows: ``100k_chunks`` (10 elements a chunk: per-task overhead dominates) and ``8_chunks``
(125,000 elements a chunk: the data's trip dominates). Floor: one process, no pool:
``sum(list(map(chunk_sum, chunks)))`` timed the same way.

Peers (``--peers``): loky's reusable executor, with the chunksize the stdlib's ``Pool.map``
picks (4 chunks a worker; loky's own default of 1 would make 100,000 round trips), and
mpire's ``WorkerPool.map`` with its default chunking.

Without NumPy every subject is skipped, with a note saying so. NumPy is imported at
module level so that ``chunk_sum`` pays no import per call; workers need it anyway to
receive the chunks.
"""

from __future__ import annotations

import math
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from numpy.typing import NDArray

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

try:
    import numpy as np
except ImportError:  # every trial of this workload is then skipped
    np = None  # type: ignore[assignment]

#: Elements of ``data``, (full, --quick).
ELEMENTS = (1_000_000, 200_000)
#: Chunks of the ``100k_chunks`` row, (full, --quick): 10 elements each.
MANY_CHUNKS = (100_000, 20_000)
#: Chunks of the ``8_chunks`` row.
FEW_CHUNKS = 8
#: Chunks of the untimed warm-up map.
WARM_UP = 16
#: How far the pool's total may be from ``np.sum(data)``, relatively.
REL_TOL = 1e-9
#: Peer name → library (see ``_pools.LIBRARIES``), and whether it gets ``Pool``'s chunksize.
PEERS = {"loky (Pool's chunksize)": ("loky", True), "mpire": ("mpire", False)}
NO_NUMPY = "numpy is not installed (pip install numpy): seed_numpy needs it"


def chunk_sum(chunk: NDArray[np.float64]) -> float:
    """The mapped function: one chunk's sum, as a Python float."""
    return float(np.sum(chunk))


def worker_pid(delay: float) -> int:
    """The warm-up's probe (``_pools.warm_up``): sleep ``delay`` s, return this worker's pid."""
    time.sleep(delay)
    return os.getpid()


def _prepare(params: Params) -> tuple[list[NDArray[np.float64]], float]:
    """The chunks and their expected total, or :class:`Skipped` without NumPy."""
    from ferroproc.bench.workloads import _gate
    from ferroproc.bench.workloads._base import Skipped

    if np is None:
        raise Skipped(NO_NUMPY)
    data = np.random.rand(_gate.positive_int(params, "elements"))
    chunks = np.array_split(data, _gate.positive_int(params, "chunks"))
    return chunks, float(np.sum(data))


def _check(results: list[float], total: float, chunks: int, expected: float) -> None:
    from ferroproc.bench.workloads._base import CheckFailed

    if len(results) != chunks:
        raise CheckFailed(f"map returned {len(results)} results for {chunks} chunks")
    if not math.isclose(total, expected, rel_tol=REL_TOL):
        raise CheckFailed(f"the chunks' sums add up to {total!r}, np.sum(data) is {expected!r}")


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``sum(pool.map(chunk_sum, chunks))`` on a warm pool; return seconds."""
    from ferroproc.bench.workloads import _gate, _pools

    library, pool_chunksize = PEERS.get(impl, ("pool", False))
    processes = _gate.positive_int(params, "processes")
    chunks, expected = _prepare(params)
    chunksize = _pools.pool_default_chunksize(len(chunks), processes) if pool_chunksize else None

    pool = _pools.open_pool(library, module, processes)
    try:
        _pools.warm_up(
            pool, worker_pid, chunk_sum, chunks[:WARM_UP], chunksize=chunksize, processes=processes
        )

        def work() -> tuple[list[float], float]:
            results = pool.map(chunk_sum, chunks, chunksize)
            return results, sum(results)

        seconds, (results, total) = _pools.timed(work)
    finally:
        pool.close()

    _check(results, total, len(chunks), expected)
    return seconds


def one_process(params: Params) -> float:
    """Floor: ``sum(list(map(chunk_sum, chunks)))`` in this process; return seconds."""
    from ferroproc.bench.workloads import _pools

    chunks, expected = _prepare(params)

    def work() -> tuple[list[float], float]:
        results = list(map(chunk_sum, chunks))
        return results, sum(results)

    seconds, (results, total) = _pools.timed(work)
    _check(results, total, len(chunks), expected)
    return seconds


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    elements = sizing.count(*ELEMENTS)
    shape: Params = {"processes": 2, "elements": elements}
    return [
        Variant(
            "100k_chunks",
            {**shape, "chunks": min(elements, sizing.count(*MANY_CHUNKS))},
            floor="one_process",
            target=Target("baseline", 2.0),
        ),
        Variant("8_chunks", {**shape, "chunks": min(elements, FEW_CHUNKS)}, floor="one_process"),
    ]


def workload() -> Workload:
    """Describe ``seed_numpy`` for the registry."""
    from ferroproc.bench.workloads._base import Floor, Peer, Workload

    return Workload(
        name="seed_numpy",
        description="sum(pool.map(chunk_sum, np.array_split(data, chunks))) on a warm"
        " 2-worker pool (the split not timed); total checked against np.sum(data)",
        unit="s",
        better="lower",
        variants=_variants,
        run=run,
        floors={
            "one_process": Floor(
                "one_process",
                "one process, no pool: sum(list(map(chunk_sum, chunks)))",
                one_process,
            )
        },
        peers=tuple(Peer(name, library) for name, (library, _) in PEERS.items()),
        order=83,
    )
