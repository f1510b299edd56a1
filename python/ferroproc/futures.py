"""``concurrent.futures.ProcessPoolExecutor`` on ferroproc's pool engine.

``ProcessPoolExecutor`` keeps the stdlib executor's constructor, methods, errors and
``Future`` objects (``as_completed``, ``wait`` and done-callbacks work as usual), but its
work runs on a private :class:`ferroproc.pool.Pool`, so it inherits that pool's
supervision: a worker that dies fails only the future it was running, and the executor
goes on.

How a call travels::

    submit(fn, *args) ──► _TaskFuture (PENDING) ──► returned to the caller
         │ one notifying job per future, one task per job (APPLY; a map chunk: STARMAP)
         ▼
    PoolEngine (Rust) ── shared-memory inboxes ──► worker processes
         │ the job is ready: a ("ready", job) event
         ▼
    the pool's event thread ── pool._cache[job.id]._deliver() ──► _TaskLink
         │ take_all(): the value, or the failure as an exception
         ▼
    Future.set_result / set_exception ──► waiters, as_completed, done-callbacks

``Future.cancel()`` asks the engine to drop the task (``cancel_pending``): it succeeds
while no worker holds the task yet, and from then on returns ``False``.

The executor starts its workers at the first ``submit`` or ``map``, as the stdlib's does,
so creating one at import time is harmless under spawn. At interpreter exit every
executor still open is shut down and its submitted work completes, as in the stdlib.
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    TimeoutError,
    as_completed,
    wait,
)
from typing import TypeVar

from . import _core, util
from ._pool_results import ApplyResult, failure
from ._pool_worker import APPLY, STARMAP
from .context import BaseContext, TaskTimeoutError, WorkerLostError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, ParamSpec

    from .pool import Pool

    _P = ParamSpec("_P")

_T = TypeVar("_T")

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "BrokenProcessPool",
    "CancelledError",
    "Future",
    "ProcessPoolExecutor",
    "TaskTimeoutError",
    "TimeoutError",
    "WorkerLostError",
    "as_completed",
    "wait",
]


class BrokenProcessPool(BrokenExecutor):
    """The executor cannot run calls: it could not start (or restart) its worker
    processes at all, or their initializer raised.

    Unlike the stdlib's, this is not raised when one worker dies: that fails only the
    future the worker was running, with ``WorkerLostError``. It subclasses
    ``concurrent.futures.BrokenExecutor``, which is what the stdlib's
    ``BrokenProcessPool`` subclasses too (ferroproc does not import the stdlib's
    ``multiprocessing``, so it cannot subclass that class itself).
    """


#: How many functions an executor with an initializer keeps a wrapper for (see
#: ``ferroproc.pool.FUNCTIONS_REMEMBERED``, how many definitions a pool keeps).
GUARDED_REMEMBERED = 256


# -- in the workers: a failing initializer ---------------------------------------------

#: In a worker, the exception its initializer raised (``None`` if it ran, or there is none).
_initializer_failure: BaseException | None = None


class _InitializerFailed(BrokenProcessPool):
    """A call reached a worker whose initializer raised."""


class _GuardedInitializer:
    """The executor's initializer as its workers run it: an exception is kept, not
    raised, so the worker lives on and fails each call with ``BrokenProcessPool``
    (a worker that died of it would only be replaced by another that dies the same way)."""

    def __init__(self, initializer: Callable[..., object]) -> None:
        self.initializer = initializer

    def __call__(self, *args: Any) -> None:
        global _initializer_failure
        try:
            self.initializer(*args)
        except BaseException as error:
            _initializer_failure = error
            import sys
            import traceback

            sys.stderr.write("Exception in initializer:\n")
            traceback.print_exc()


class _Guarded:
    """A submitted function, as sent to workers that run an initializer: it refuses to run
    where the initializer failed."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _initializer_failure is not None:
            raise _InitializerFailed(
                "the worker's initializer raised, so the executor cannot run calls "
                f"(see the traceback above): {_initializer_failure!r}"
            ) from _initializer_failure
        return self.fn(*args, **kwargs)


class _Health:
    """Whether an executor can take work; shared with the links of its futures."""

    def __init__(self) -> None:
        self.broken: str | None = None


# -- futures ----------------------------------------------------------------------------

# Where a future stands as far as the pool is concerned; guarded by its ``_gate``.
_PENDING = 0  # the task may still be waiting for a worker
_HELD = 1  # a worker has the task: it can no longer be cancelled
_CANCELLED = 2  # the engine dropped the task before any worker got it
_SETTLED = 3  # a result or an exception is being (or was) set


class _TaskFuture(Future[_T]):
    """A ``concurrent.futures.Future`` whose ``cancel`` withdraws its task from the pool."""

    def __init__(self, engine: _core.PoolEngine, job: _core.PoolJob) -> None:
        super().__init__()
        self._pool_engine = engine
        self._pool_job = job
        self._gate = threading.Lock()
        self._phase = _PENDING
        self._cancel_notified = False

    def cancel(self) -> bool:
        """Cancel the call if no worker has taken it yet; return whether it is cancelled.

        Once this finds the task with a worker, the future counts as running and
        ``cancel`` returns ``False`` from then on, as for a running stdlib future.
        """
        with self._gate:
            if self._phase == _PENDING:
                if self._pool_engine.cancel_pending(self._pool_job):
                    self._phase = _CANCELLED
                else:
                    self._phase = _HELD
                    # PENDING to RUNNING: no callback runs, so this is safe under the gate.
                    self.set_running_or_notify_cancel()
            if self._phase != _CANCELLED:
                return False
        super().cancel()  # PENDING to CANCELLED; runs the done-callbacks
        with self._gate:
            notify, self._cancel_notified = not self._cancel_notified, True
        if notify:
            # CANCELLED to CANCELLED_AND_NOTIFIED, which wait() and as_completed() count
            # as done (the stdlib's executor does this when it dequeues a cancelled call).
            self.set_running_or_notify_cancel()
        return True

    def _settle(self, success: bool, value: Any) -> None:
        """Set the outcome, unless the future was cancelled."""
        with self._gate:
            if self._phase == _CANCELLED:
                return
            self._phase = _SETTLED
        if success:
            self.set_result(value)
        else:
            self.set_exception(value)


class _TaskLink(ApplyResult):
    """What the pool's event thread calls back when a future's job is ready."""

    def __init__(
        self,
        engine: _core.PoolEngine,
        job: _core.PoolJob,
        future: _TaskFuture[Any],
        health: _Health,
    ) -> None:
        super().__init__(engine, job, None, None)
        self._future = future
        self._health = health

    def _deliver(self) -> None:
        try:
            success, detail = self._job.take_all()
        except BaseException as error:
            # Never leave the future unresolved.
            self._future._settle(False, error)
            return
        if success:
            self._future._settle(True, detail[0])
        elif detail[0] == _core.POOL_CANCELLED:
            # Not by Future.cancel (the future ignores it then): the pool was terminated.
            self._future._settle(
                False,
                BrokenProcessPool("the process pool was terminated before this call finished"),
            )
        else:
            exc = failure(self._engine, detail)
            if isinstance(exc, _InitializerFailed):
                # Take no more work, as the stdlib's executor does.
                self._health.broken = str(exc)
            self._future._settle(False, exc)


# -- interpreter exit -------------------------------------------------------------------

#: The priority of the exit finalizer that lets an open executor's calls complete: above
#: the pool's own (15), which terminates it.
EXIT_PRIORITY = 20


def _finish(pool: Pool) -> None:
    """At exit (a ``util.Finalize`` callback, so it runs in a child process's exit too):
    the submitted calls complete, as with the stdlib's executor, then the workers exit.
    Ctrl-C while it waits terminates the pool."""
    try:
        pool.close()
        pool.join()
    except BaseException:
        pool.terminate()
        raise


# -- the executor -----------------------------------------------------------------------


def _as_context(mp_context: object) -> BaseContext:
    """ferroproc's context for ``mp_context`` (a stdlib context maps by start method)."""
    from .context import _default_context

    if mp_context is None:
        return _default_context.get_context()
    if isinstance(mp_context, BaseContext):
        return mp_context
    get_start_method = getattr(mp_context, "get_start_method", None)
    if get_start_method is None:
        raise TypeError(f"mp_context must be a multiprocessing context, not {mp_context!r}")
    return _default_context.get_context(get_start_method(allow_none=False))


class ProcessPoolExecutor(Executor):
    """Runs calls in a pool of worker processes (``concurrent.futures.ProcessPoolExecutor``).

    The constructor, ``submit``, ``map``, ``shutdown`` and the futures behave as the
    stdlib's (Python 3.11), with these differences:

    - **A dead worker does not break the executor.** When a worker dies (SIGKILL, the
      OOM killer, a segfault, ``os._exit``), only the future of the call it was running
      fails, with ``ferroproc.WorkerLostError`` naming the worker and its exit code or
      signal; a replacement starts and every other future completes. The stdlib instead
      fails every pending future with ``BrokenProcessPool`` and refuses new work.
      ``BrokenProcessPool`` here means only that no worker could be started at all.
    - ``task_timeout`` (seconds): a call that runs longer has its worker killed and
      replaced, and its future raises ``ferroproc.TaskTimeoutError``.
    - ``retries``: a call whose worker dies under it runs again, up to that many times,
      before its future raises ``WorkerLostError``.
    - ``max_tasks_per_child`` works with every start method, fork included (the stdlib
      refuses fork and defaults to spawn).
    - ``mp_context`` is a ferroproc context; a stdlib context is taken as ferroproc's
      context of the same start method.
    - A future is ``running()`` only once a ``cancel()`` has found its call with a
      worker: the pool does not report when a queued call starts.
    - Lambdas and closures are sent with cloudpickle when it is installed.

    As in the stdlib, an executor still open at interpreter exit is shut down there, and
    the calls already submitted complete first.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        *,
        max_tasks_per_child: int | None = None,
        task_timeout: float | None = None,
        retries: int = 0,
    ) -> None:
        if max_workers is None:
            max_workers = util.usable_cpu_count()
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        if task_timeout is not None and not task_timeout > 0:
            raise ValueError("task_timeout must be a positive number of seconds")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self._max_workers = max_workers
        self._mp_context = _as_context(mp_context)
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks_per_child = max_tasks_per_child
        self._task_timeout = task_timeout
        self._retries = retries
        self._pool: Pool | None = None
        self._at_exit: util.Finalize | None = None
        self._shutdown_lock = threading.Lock()
        self._shutdown_thread = False
        self._health = _Health()
        # The wrappers sent in place of functions when there is an initializer: one per
        # function, so the pool sends each definition once.
        self._guarded: collections.OrderedDict[int, _Guarded] = collections.OrderedDict()

    def __repr__(self) -> str:
        cls = type(self)
        state = "shutdown" if self._shutdown_thread else "running"
        return f"<{cls.__module__}.{cls.__qualname__} max_workers={self._max_workers} {state}>"

    def __reduce__(self) -> Any:
        raise TypeError("a ProcessPoolExecutor cannot be pickled or passed to another process")

    # -- starting -------------------------------------------------------------------------

    def _running_pool(self) -> Pool:
        """The pool, started on first use; raises if no more work can be scheduled.
        Call with ``_shutdown_lock`` held."""
        if self._health.broken is not None:
            raise BrokenProcessPool(self._health.broken)
        if self._shutdown_thread:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if util.is_exiting():
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        pool = self._pool
        if pool is None:
            from .pool import Pool

            try:
                initializer = self._initializer
                pool = Pool(
                    self._max_workers,
                    None if initializer is None else _GuardedInitializer(initializer),
                    self._initargs,
                    self._max_tasks_per_child,
                    self._mp_context,
                    task_timeout=self._task_timeout,
                    retries=self._retries,
                    # A call in a worker's inbox cannot be cancelled: hold one queued
                    # behind the running one, as the stdlib's call queue does.
                    _max_held=2,
                )
            except Exception as error:
                broken = f"the executor could not start its worker processes: {error}"
                self._health.broken = broken
                raise BrokenProcessPool(broken) from error
            self._pool = pool
            # Keeps the pool until exit, unless shutdown(wait=True) joins it first.
            self._at_exit = util.Finalize(None, _finish, args=(pool,), exitpriority=EXIT_PRIORITY)
            # Collected without shutdown: the calls still complete, then the workers exit.
            weakref.finalize(self, pool.close).atexit = False
        elif pool._engine.closed:
            # Only the pool itself closes its engine while we run: when no replacement
            # worker could be started.
            broken = "the executor could not restart its worker processes"
            self._health.broken = broken
            raise BrokenProcessPool(broken)
        return pool

    def _sendable(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """What is sent for ``fn``: itself, or with an initializer its ``_Guarded``
        wrapper. Call with ``_shutdown_lock`` held."""
        if self._initializer is None:
            return fn
        guarded = self._guarded.get(id(fn))
        if guarded is not None and guarded.fn is fn:
            self._guarded.move_to_end(id(fn))
            return guarded
        guarded = self._guarded[id(fn)] = _Guarded(fn)
        if len(self._guarded) > GUARDED_REMEMBERED:
            self._guarded.popitem(last=False)
        return guarded

    def _submit(self, pool: Pool, fn: Callable[..., Any], kind: int, task: Any) -> _TaskFuture[Any]:
        """Submits one task as its own job and returns its future."""
        engine = pool._engine
        job = engine.new_job(True, True)
        future: _TaskFuture[Any] = _TaskFuture(engine, job)
        try:
            token = pool._functions.token(fn)
            engine.submit(job, token, kind, (task,), True)
        except Exception as error:
            # As in the stdlib, a call that cannot be sent (an argument or a function
            # pickle refuses) fails its future rather than submit().
            future._settle(False, error)
            return future
        link = _TaskLink(engine, job, future, self._health)
        pool._cache[job.id] = link
        # Registered only once submitted, so a call that could not be sent leaves nothing
        # behind. A job that became ready before this found no link in the event thread:
        # it is delivered here. Whoever pops the link delivers it, so it is delivered once.
        if job.ready() and pool._cache.pop(job.id, None) is link:
            link._deliver()
        return future

    # -- the Executor API -----------------------------------------------------------------

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Schedule ``fn(*args, **kwargs)`` in a worker; return its ``Future``."""
        with self._shutdown_lock:
            pool = self._running_pool()
            return self._submit(pool, self._sendable(fn), APPLY, (args, kwargs))

    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[_T]:
        """Like ``map(fn, *iterables)``, the calls running in the workers.

        Every call is submitted at once; the iterator yields the results in order and
        raises the first call's exception when it reaches it, or ``TimeoutError`` once
        ``timeout`` seconds have passed since ``map`` was called. With ``chunksize`` > 1,
        the calls travel in chunks of that many, each chunk one task.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        deadline = None if timeout is None else time.monotonic() + timeout
        calls = list(zip(*iterables))
        with self._shutdown_lock:
            pool = self._running_pool()
            fn = self._sendable(fn)
            if chunksize == 1:
                futures = [self._submit(pool, fn, APPLY, (args, {})) for args in calls]
            else:
                futures = [
                    self._submit(pool, fn, STARMAP, calls[start : start + chunksize])
                    for start in range(0, len(calls), chunksize)
                ]
        return _results_in_order(futures, deadline, chunked=chunksize > 1)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more calls and let the workers exit once the submitted ones are done.

        ``cancel_futures`` cancels every call no worker has taken yet. ``wait`` waits for
        the rest to finish and the workers to exit; without it, this returns at once and
        the calls still complete.
        """
        with self._shutdown_lock:
            self._shutdown_thread = True
            pool = self._pool
        if pool is None:
            return
        if cancel_futures:
            for link in list(pool._cache.values()):
                if isinstance(link, _TaskLink):
                    link._future.cancel()
        pool.close()
        # From a done-callback the event thread cannot wait for itself: it returns at once.
        if wait and threading.current_thread() is not pool._event_thread:
            pool.join()
            if self._at_exit is not None:
                self._at_exit.cancel()


def _results_in_order(
    futures: list[_TaskFuture[Any]], deadline: float | None, *, chunked: bool
) -> Iterator[Any]:
    """The results of ``map``'s futures in order; what is left is cancelled when the
    iterator stops early (an exception, a timeout, or being closed)."""
    futures.reverse()
    try:
        while futures:
            future = futures.pop()
            try:
                value = future.result(None if deadline is None else deadline - time.monotonic())
            finally:
                future.cancel()
                # Do not keep the future (and an exception's traceback) alive.
                del future
            if chunked:
                yield from value
            else:
                yield value
    finally:
        for future in futures:
            future.cancel()
