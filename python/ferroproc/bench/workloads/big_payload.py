"""``big_payload``: ``pool.map(array_sum, arrays)`` over 32 NumPy arrays of 8 MB each.

Unit: seconds (lower is better), also shown as GB/s moved: the arrays' bytes (32 x 8 MB
= 256 MB) over the seconds. Each trial builds, untimed, ``arrays`` float64 arrays of
``elements`` elements (``np.random.rand(elements)`` each, 1,000,000 elements = 8 MB) and
their sums, starts a pool of 2 workers and warms it up with small arrays (``_pools.py``
says how), then times::

    results = pool.map(array_sum, arrays)        # array_sum(a) = float(np.sum(a))

The sums are cheap (the one-process floor does them all in a few tens of ms): what is
timed is moving 256 MB to the workers, however each library moves it.

Check (untimed): one result per array, each equal to that array's sum computed in this
process (within a relative :data:`REL_TOL`).

Floor: one process, no pool: ``list(map(array_sum, arrays))``.

Peers (``--peers``): loky's reusable executor with the chunksize the stdlib's
``Pool.map`` picks (4 chunks a worker), mpire's ``WorkerPool.map`` with its default
chunking, and joblib's ``Parallel(n_jobs=2)(delayed(array_sum)(a) for a in arrays)``
with its default backend, which memory-maps arrays over 1 MB instead of pickling them
(the dump to its temporary folder is part of the timed call).

Without NumPy every subject is skipped, with a note saying so.
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

#: Arrays mapped per trial, (full, --quick).
ARRAYS = (32, 8)
#: Elements (float64) per array: 8 MB.
ELEMENTS = 1_000_000
#: Small arrays of the untimed warm-up map.
WARM_UP = 16
#: How far a worker's sum may be from this process's, relatively.
REL_TOL = 1e-12
#: Peer name → library (see ``_pools.LIBRARIES``), and whether it gets ``Pool``'s chunksize.
PEERS = {
    "loky (Pool's chunksize)": ("loky", True),
    "mpire": ("mpire", False),
    "joblib (memmapping)": ("joblib", False),
}
NO_NUMPY = "numpy is not installed (pip install numpy): big_payload needs it"


def array_sum(array: NDArray[np.float64]) -> float:
    """The mapped function: one array's sum, as a Python float."""
    return float(np.sum(array))


def worker_pid(delay: float) -> int:
    """The warm-up's probe (``_pools.warm_up``): sleep ``delay`` s, return this worker's pid."""
    time.sleep(delay)
    return os.getpid()


def payload_bytes(params: Params) -> int:
    """The bytes one trial moves: every array's data."""
    arrays, elements = params["arrays"], params["elements"]
    if not isinstance(arrays, int) or not isinstance(elements, int):
        raise ValueError(f"arrays and elements must be ints, not {arrays!r} and {elements!r}")
    return arrays * elements * 8


def _prepare(params: Params) -> tuple[list[NDArray[np.float64]], list[float]]:
    """The arrays and their sums, or :class:`Skipped` without NumPy."""
    from ferroproc.bench.workloads import _gate
    from ferroproc.bench.workloads._base import Skipped

    if np is None:
        raise Skipped(NO_NUMPY)
    elements = _gate.positive_int(params, "elements")
    arrays = [np.random.rand(elements) for _ in range(_gate.positive_int(params, "arrays"))]
    return arrays, [float(np.sum(array)) for array in arrays]


def _check(results: list[float], expected: list[float]) -> None:
    from ferroproc.bench.workloads._base import CheckFailed

    if len(results) != len(expected):
        raise CheckFailed(f"map returned {len(results)} results for {len(expected)} arrays")
    wrong = [
        i
        for i, (got, want) in enumerate(zip(results, expected))
        if not math.isclose(got, want, rel_tol=REL_TOL)
    ]
    if wrong:
        raise CheckFailed(
            f"{len(wrong)} of {len(expected)} sums are wrong, the first for array {wrong[0]}:"
            f" {results[wrong[0]]!r} instead of {expected[wrong[0]]!r}"
        )


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``pool.map(array_sum, arrays)`` on a warm pool; return seconds."""
    from ferroproc.bench.workloads import _gate, _pools

    library, pool_chunksize = PEERS.get(impl, ("pool", False))
    processes = _gate.positive_int(params, "processes")
    arrays, expected = _prepare(params)
    chunksize = _pools.pool_default_chunksize(len(arrays), processes) if pool_chunksize else None
    small = [np.full(16, float(i)) for i in range(WARM_UP)]

    pool = _pools.open_pool(library, module, processes)
    try:
        _pools.warm_up(pool, worker_pid, array_sum, small, chunksize=chunksize, processes=processes)
        seconds, results = _pools.timed(lambda: pool.map(array_sum, arrays, chunksize))
    finally:
        pool.close()

    _check(results, expected)
    return seconds


def one_process(params: Params) -> float:
    """Floor: ``list(map(array_sum, arrays))`` in this process; return seconds."""
    from ferroproc.bench.workloads import _pools

    arrays, expected = _prepare(params)
    seconds, results = _pools.timed(lambda: list(map(array_sum, arrays)))
    _check(results, expected)
    return seconds


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    arrays = sizing.count(*ARRAYS)
    params: Params = {"processes": 2, "arrays": arrays, "elements": ELEMENTS}
    return [Variant("8MB_arrays", params, floor="one_process", target=Target("baseline", 5.0))]


def workload() -> Workload:
    """Describe ``big_payload`` for the registry."""
    from ferroproc.bench.workloads._base import AlsoIn, Floor, Peer, Workload

    return Workload(
        name="big_payload",
        description="pool.map(array_sum, arrays) over 8 MB float64 arrays on a warm 2-worker"
        " pool; every sum checked",
        unit="s",
        better="lower",
        variants=_variants,
        run=run,
        floors={
            "one_process": Floor(
                "one_process", "one process, no pool: list(map(array_sum, arrays))", one_process
            )
        },
        peers=tuple(Peer(name, library) for name, (library, _) in PEERS.items()),
        order=84,
        also=AlsoIn(
            "GB/s", "higher", lambda seconds, params: payload_bytes(params) / seconds / 1e9
        ),
    )
