"""What the pool workloads share: one way to drive each pool library, and the trial's shape.

The pool workloads (``pool_map_tiny``, ``pool_chunk1``, ``apply_async``, ``seed_numpy``,
``big_payload``) each measure one call in the trial process (the *parent*)::

    open_pool(library, module, processes)   the pool, its workers started: not timed
    warm_up(pool, probe, target, ...)       every worker up, then one small map of the
                                            timed target: not timed
    clock ─ the timed call (map, or apply_async + get each), and the sum ─ clock
    check the results                       not timed; CheckFailed when wrong
    pool.close()                            close + join (shutdown, stop_and_join): not timed

So process start-up is never timed, and every library is timed on the same call. The
libraries, and how each is driven (``processes`` workers, 2 by default):

    pool                an implementation with the stdlib's API: module.Pool(processes)
                        (its default context), map(f, items[, chunksize]),
                        apply_async(f, (x,)).get(), close() + join()
    concurrent.futures  ProcessPoolExecutor(max_workers=processes): map(f, items,
                        chunksize=...) (its default chunksize is 1), submit(f, x).result(),
                        shutdown()
    loky                get_reusable_executor(max_workers=processes), driven the same way
                        (its default chunksize is 1 too)
    mpire               WorkerPool(n_jobs=processes, keep_alive=True) (keep_alive, so the
                        warm-up's workers do the timed map): map(f, items[, chunk_size]),
                        stop_and_join()
    joblib              with Parallel(n_jobs=processes) as parallel:
                        parallel(delayed(f)(x) for x in items), its default (loky)
                        backend, automatic batching and memmapping of large arrays;
                        leaving the with block is its close (its workers belong to its
                        reusable executor and end with the trial process)

An implementation without ``Pool`` (ferroproc before it has one) is :class:`Skipped`, not
an error. Only the parent imports this module: targets live in the workload modules,
which every worker (forked, or a fresh interpreter for loky and joblib) can import.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any, Callable, TypeVar

from ferroproc.bench.workloads._base import Skipped

#: The libraries :func:`open_pool` knows.
LIBRARIES = ("pool", "concurrent.futures", "loky", "mpire", "joblib")
#: Longest the warm-up waits for every worker to answer.
WARM_UP_S = 30.0
#: How long each warm-up probe task sleeps, so that one worker cannot take them all.
PROBE_DELAY_S = 0.01

T = TypeVar("T")


def _as_list(results: Any) -> list[Any]:
    """``results`` as a list, not copied when it is one already (``Pool.map`` returns one)."""
    return results if isinstance(results, list) else list(results)


class Driver:
    """One started pool, driven through the calls the workloads time."""

    def map(
        self, func: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None
    ) -> list[Any]:
        """``func`` over ``items`` in order, ``chunksize`` items a task (``None``: the default)."""
        raise NotImplementedError

    def apply_each(self, func: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Submit ``func(x)`` for every item, then wait for each result in order."""
        raise NotImplementedError(f"{type(self).__name__} has no apply_async")

    def close(self) -> None:
        """Stop the workers and wait for them."""
        raise NotImplementedError


class _StdlibPool(Driver):
    def __init__(self, module: ModuleType, processes: int) -> None:
        pool_class = getattr(module, "Pool", None)
        if pool_class is None:
            raise Skipped(f"{module.__name__}.Pool not available")
        try:
            self.pool = pool_class(processes)
        except NotImplementedError as exc:
            raise Skipped(f"{module.__name__}.Pool not available ({exc})") from exc

    def map(
        self, func: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None
    ) -> list[Any]:
        if chunksize is None:
            return _as_list(self.pool.map(func, items))
        return _as_list(self.pool.map(func, items, chunksize))

    def apply_each(self, func: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        handles = [self.pool.apply_async(func, (x,)) for x in items]
        return [handle.get() for handle in handles]

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


class _Executor(Driver):
    """``concurrent.futures``' API: its ``ProcessPoolExecutor``, or loky's."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def map(
        self, func: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None
    ) -> list[Any]:
        return list(self.executor.map(func, items, chunksize=chunksize or 1))

    def apply_each(self, func: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        futures = [self.executor.submit(func, x) for x in items]
        return [future.result() for future in futures]

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class _Mpire(Driver):
    def __init__(self, module: ModuleType, processes: int) -> None:
        self.pool = module.WorkerPool(n_jobs=processes, keep_alive=True)

    def map(
        self, func: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None
    ) -> list[Any]:
        # mpire unpacks an item that is an iterable (a tuple) into arguments, but passes
        # ints and NumPy arrays whole: every item here is one of those.
        return _as_list(self.pool.map(func, items, chunk_size=chunksize))

    def close(self) -> None:
        self.pool.stop_and_join()


class _Joblib(Driver):
    def __init__(self, module: ModuleType, processes: int) -> None:
        self.module = module
        self.parallel = module.Parallel(n_jobs=processes)
        self.parallel.__enter__()

    def map(
        self, func: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None
    ) -> list[Any]:
        if chunksize is not None:
            raise ValueError("joblib batches by itself: its rows take no chunksize")
        delayed = self.module.delayed
        return _as_list(self.parallel(delayed(func)(x) for x in items))

    def close(self) -> None:
        # joblib's own close. Its workers belong to its reusable executor, which outlives
        # Parallel by design; they go with the trial process.
        self.parallel.__exit__(None, None, None)


def open_pool(library: str, module: ModuleType, processes: int) -> Driver:
    """Start a pool of ``library`` (one of :data:`LIBRARIES`) imported as ``module``."""
    if library == "pool":
        return _StdlibPool(module, processes)
    if library == "concurrent.futures":
        return _Executor(module.ProcessPoolExecutor(max_workers=processes))
    if library == "loky":
        return _Executor(module.get_reusable_executor(max_workers=processes))
    if library == "mpire":
        return _Mpire(module, processes)
    if library == "joblib":
        return _Joblib(module, processes)
    raise ValueError(f"unknown pool library {library!r}; known: {', '.join(LIBRARIES)}")


def warm_up(
    driver: Driver,
    probe: Callable[[float], int],
    func: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    chunksize: int | None,
    processes: int,
) -> None:
    """Untimed: wait until every worker has run a task, then map ``func`` over ``items``.

    ``probe(delay)`` (a workload module's ``worker_pid``) sleeps ``delay`` seconds and
    returns its worker's pid; small maps of it run (default chunking: with so few items,
    one item a task everywhere) until ``processes`` different pids answered, or until
    :data:`WARM_UP_S` passed (a pool may start workers only as it sees fit). Without
    this, a worker that starts slowly (a fresh interpreter, for loky and joblib) could
    still be starting when the clock starts, its first tasks done by the others. Then
    one small map of the timed function, with the timed chunksize.
    """
    deadline = time.monotonic() + WARM_UP_S
    seen: set[int] = set()
    while len(seen) < processes and time.monotonic() < deadline:
        seen.update(driver.map(probe, [PROBE_DELAY_S] * (2 * processes), None))
    driver.map(func, items, chunksize)


def timed(call: Callable[[], T]) -> tuple[float, T]:
    """Run ``call`` once: return the seconds it took and what it returned."""
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def pool_default_chunksize(items: int, processes: int) -> int:
    """The chunksize the stdlib's ``Pool.map`` picks for ``items`` items: 4 chunks a worker."""
    chunksize, extra = divmod(items, processes * 4)
    return max(1, chunksize + (1 if extra else 0))
