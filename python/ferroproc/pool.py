"""Process pools: the stdlib's ``multiprocessing.pool`` API on ferroproc's engine.

``Pool`` keeps the stdlib's methods, arguments and errors. Underneath, every task goes
through the Rust engine (``_core.PoolEngine``): each worker has a shared-memory inbox the
engine keeps a few tasks deep, results come back on one shared-memory channel that a
Rust thread reads without the GIL, and a supervisor thread watches every worker's pidfd.
When a worker dies, exactly the task it was running fails with ``WorkerLostError`` (or
runs again, with ``retries=``), the tasks queued behind it go to other workers, and a
replacement starts; nothing waits forever.

Beyond the stdlib, as keyword arguments whose defaults keep the stdlib's behaviour:
``task_timeout=`` (a worker whose task overruns is killed, the task raises
``TaskTimeoutError``), ``retries=``, ``progress=True`` on the map family (a tqdm bar),
``imap(..., buffersize=)``, lambdas and closures through cloudpickle, and results that
asyncio can ``await``.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
import traceback
import warnings
import weakref

from . import _core, queues, reduction, util
from ._pool_results import (
    ApplyResult,
    AsyncResult,
    IMapIterator,
    IMapUnorderedIterator,
    MapResult,
    RemoteTraceback,
    TaskTimeoutError,
    WorkerLostError,
)
from ._pool_worker import APPLY, MAP, STARMAP, worker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any, Callable

    from ._threadpool import ThreadPool

__all__ = [
    "ApplyResult",
    "AsyncResult",
    "IMapIterator",
    "IMapUnorderedIterator",
    "MapResult",
    "MaybeEncodingError",
    "Pool",
    "RemoteTraceback",
    "TaskTimeoutError",
    "ThreadPool",
    "WorkerLostError",
]

# The stdlib's pool states.
INIT = "INIT"
RUN = "RUN"
CLOSE = "CLOSE"
TERMINATE = "TERMINATE"

#: How many chunks ``imap`` keeps submitted but unfinished while it reads a lazy input.
IN_FLIGHT_PER_WORKER = 64
#: A worker's inbox ring. Tasks of 256 KiB or more travel as files of their own (see
#: ``FILE_PAYLOAD_MIN`` in the bindings), so this holds many small ones. The worker
#: allocates its pages while it starts, so the first tasks do not pay for them.
INBOX_CAPACITY = 2 << 20
#: After this many workers in a row exit before running a task (an initializer that
#: raises), the pool stops replacing them and fails what waits, instead of starting
#: processes forever as the stdlib does.
FAILED_STARTS_LIMIT = 3
#: How many functions a pool remembers having sent (by identity).
FUNCTIONS_REMEMBERED = 256


class MaybeEncodingError(Exception):
    """A task's result (or exception) could not be pickled or unpickled."""

    def __init__(self, exc: object, value: object) -> None:
        self.exc = repr(exc)
        self.value = repr(value)
        super().__init__(self.exc, self.value)

    def __str__(self) -> str:
        return f"Error sending result: '{self.value}'. Reason: '{self.exc}'"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self}>"


class _Cloudpickled:
    """A function plain pickle refused (a lambda, a closure), carried by cloudpickle."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        return (_load_cloudpickled, (self.payload,))


def _load_cloudpickled(payload: bytes) -> Any:
    import cloudpickle  # type: ignore[import-untyped]

    return cloudpickle.loads(payload)


class _Functions:
    """Tokens for the functions a pool was given: each is pickled once, and a worker
    receives its definition once (see ``_core.PoolEngine.define``)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._by_id: collections.OrderedDict[int, tuple[Any, int]] = collections.OrderedDict()
        self._next = 1
        self._lock = threading.Lock()
        # The last function and its token: a loop of apply_async calls asks for the same
        # one again and again. One tuple, replaced whole, so a reader never sees a mix.
        self._last: tuple[Any, int] = (None, 0)

    def token(self, function: Callable[..., Any]) -> int:
        last, token = self._last
        if last is function:
            return token
        if not callable(function):
            raise TypeError(f"{function!r} is not callable")
        with self._lock:
            entry = self._by_id.get(id(function))
            if entry is not None and entry[0] is function:
                self._by_id.move_to_end(id(function))
                self._last = entry
                return entry[1]
            token, self._next = self._next, self._next + 1
            _define(self._engine, token, function)
            self._by_id[id(function)] = self._last = (function, token)
            if len(self._by_id) > FUNCTIONS_REMEMBERED:
                _, (_, old) = self._by_id.popitem(last=False)
                self._engine.forget(old)
            return token


def _define(engine: Any, token: int, function: Callable[..., Any]) -> None:
    """Gives ``engine`` the function for ``token``: pickled as it is if pickle takes it,
    else through cloudpickle (lambdas, closures). Pickled once either way."""
    try:
        engine.define(token, function)
    except Exception as refusal:
        try:
            import cloudpickle
        except ImportError:
            refusal.add_note(
                "ferroproc sends lambdas and closures with cloudpickle: pip install cloudpickle"
            )
            raise refusal from None
        engine.define(token, _Cloudpickled(cloudpickle.dumps(function)))


class _ChannelHandle:
    """A channel passed to a worker: as is under fork, by its descriptors to a spawned
    or fork-server child."""

    def __init__(self, channel: _core.Channel) -> None:
        self.channel = channel

    def __getstate__(self) -> Any:
        return queues._ChannelRef(self.channel)

    def __setstate__(self, ref: Any) -> None:
        self.channel = queues._attach_channel(ref)


class _SlotsHandle:
    """The engine's slots segment passed to a worker."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._owned = False

    def __getstate__(self) -> Any:
        return reduction.DupFd(self.fd)

    def __setstate__(self, dup: Any) -> None:
        self.fd = dup.detach()
        self._owned = True

    def close(self) -> None:
        """Closes a descriptor this process received (the mapping stays)."""
        if self._owned:
            os.close(self.fd)
            self._owned = False


class _Workers:
    """A pool's worker processes: starting them into slots and reaping them. Shared by
    the pool and its event thread, which never holds the pool itself (so an abandoned
    pool can be collected)."""

    def __init__(
        self,
        *,
        ctx: Any,
        engine: _core.PoolEngine,
        results: _core.Channel,
        size: int,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        maxtasks: int | None,
        process_factory: Callable[..., Any],
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        self.results = _ChannelHandle(results)
        self.slots = _SlotsHandle(engine.slots_fd)
        self.processes: list[Any] = [None] * size
        self.initializer = initializer
        self.initargs = initargs
        self.maxtasks = maxtasks
        self.process_factory = process_factory
        self.lock = threading.Lock()
        #: Workers in a row that exited before running anything (see FAILED_STARTS_LIMIT).
        self.failed_starts = 0

    def start(self, slot: int) -> None:
        inbox = _core.Channel(INBOX_CAPACITY)
        process = self.process_factory(
            self.ctx,
            target=worker,
            kwargs={
                "inbox": _ChannelHandle(inbox),
                "results": self.results,
                "slots": self.slots,
                "slot": slot,
                "initializer": self.initializer,
                "initargs": self.initargs,
                "maxtasks": self.maxtasks,
            },
        )
        process.name = process.name.replace("Process", "PoolWorker")
        process.daemon = True
        process.start()
        with self.lock:
            self.processes[slot] = process
        try:
            self.engine.add_worker(slot, inbox, process._popen._child)
        except BaseException:
            # The engine refused it (the pool finished meanwhile): it must not linger.
            process.kill()
            process.join()
            raise
        util.debug("added worker")

    def reap(self, slot: int) -> None:
        with self.lock:
            process = self.processes[slot]
        if process is not None:
            process.join()

    def join_all(self) -> None:
        with self.lock:
            processes = [p for p in self.processes if p is not None]
        for process in processes:
            process.join()


def _handle_events(
    engine: Any, cache: dict[int, ApplyResult], workers: _Workers | None = None
) -> None:
    """The pool's event thread: runs callbacks and replaces workers that exited."""
    while True:
        event = engine.next_event(None)
        if event is None:
            continue
        if event[0] == "ready":
            result = cache.pop(event[1], None)
            if result is not None:
                try:
                    result._deliver()
                except BaseException:
                    util.sub_warning("a pool callback raised:\n%s", traceback.format_exc())
        elif event[0] == "exited" and workers is not None:
            _, slot, _pid, exitcode, replace, started = event
            workers.reap(slot)
            if not replace:
                continue
            if started or exitcode == 0:
                workers.failed_starts = 0
            else:
                workers.failed_starts += 1
                if workers.failed_starts >= FAILED_STARTS_LIMIT:
                    engine.break_with(
                        f"{FAILED_STARTS_LIMIT} pool workers in a row exited (code {exitcode}) "
                        "before running a task; is the initializer failing? "
                        "The pool was terminated"
                    )
                    continue
            _replace_worker(workers, slot)
        else:
            return


def _replace_worker(workers: _Workers, slot: int) -> None:
    try:
        workers.start(slot)
    except ValueError:
        return  # the pool finished before the replacement started: nothing to do
    except BaseException:
        util.sub_warning("could not start a pool worker:\n%s", traceback.format_exc())
        # Without a worker in this slot, a pool whose every start fails would wait
        # forever: end it.
        if not any(workers.processes):
            workers.engine.terminate()


def _terminate_pool(workers: _Workers, thread: threading.Thread) -> None:
    util.debug("terminating pool")
    workers.engine.terminate()
    if thread.is_alive() and thread is not threading.current_thread():
        thread.join()
    workers.join_all()
    workers.engine.shutdown()


class Pool:
    """A pool of worker processes (``multiprocessing.Pool``).

    ``task_timeout`` (seconds) kills and replaces a worker whose task runs longer, and
    fails that task with ``TaskTimeoutError``; ``retries`` runs a task again, that many
    times, when its worker dies under it, before it fails with ``WorkerLostError``.
    """

    _wrap_exception = True

    @staticmethod
    def Process(ctx: Any, *args: Any, **kwds: Any) -> Any:
        return ctx.Process(*args, **kwds)

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        *,
        task_timeout: float | None = None,
        retries: int = 0,
        _max_held: int | None = None,
    ) -> None:
        self._state = INIT
        from .context import _default_context

        self._ctx = context if context is not None else _default_context.get_context()
        if processes is None:
            processes = util.usable_cpu_count()
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (
            not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0
        ):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self._processes = processes
        self._results = _core.Channel()
        self._engine: Any = _core.PoolEngine(
            processes,
            self._results,
            queues._dumps,
            queues._loads,
            max_tasks_per_worker=maxtasksperchild,
            task_timeout=task_timeout,
            retries=retries,
            max_held=_max_held,
        )
        self._functions = _Functions(self._engine)
        self._cache: dict[int, ApplyResult] = {}
        self._workers = _Workers(
            ctx=self._ctx,
            engine=self._engine,
            results=self._results,
            size=processes,
            initializer=initializer,
            initargs=tuple(initargs),
            maxtasks=maxtasksperchild,
            process_factory=type(self).Process,
        )
        try:
            for slot in range(processes):
                self._workers.start(slot)
        except BaseException:
            self._engine.terminate()
            self._workers.join_all()
            self._engine.shutdown()
            raise
        self._pool = self._workers.processes
        self._event_thread = threading.Thread(
            target=_handle_events,
            args=(self._engine, self._cache, self._workers),
            name="ferroproc-pool-events",
            daemon=True,
        )
        self._event_thread.start()
        self._terminate = util.Finalize(
            self,
            _terminate_pool,
            args=(self._workers, self._event_thread),
            exitpriority=15,
        )
        self._state = RUN

    # -- state ---------------------------------------------------------------------

    def __del__(self, _warn: Any = warnings.warn, RUN: str = RUN) -> None:
        if getattr(self, "_state", None) == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, source=self)

    def __repr__(self) -> str:
        cls = type(self)
        return (
            f"<{cls.__module__}.{cls.__qualname__} state={self._state} pool_size={self._processes}>"
        )

    def __reduce__(self) -> Any:
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def close(self) -> None:
        """Accept no more tasks; the workers exit once the submitted ones are done."""
        util.debug("closing pool")
        if self._state == RUN:
            self._state = CLOSE
            self._engine.close()

    def terminate(self) -> None:
        """Stop at once: kill the workers; unfinished tasks fail."""
        util.debug("terminating pool")
        self._state = TERMINATE
        self._terminate()

    def join(self) -> None:
        """Wait for the workers to exit; call ``close`` or ``terminate`` first."""
        util.debug("joining pool")
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        while self._event_thread.is_alive():
            self._event_thread.join(_core.WAIT_TICK)
        self._join_workers()

    def _repopulate_pool(self) -> None:
        """The stdlib's way to refill the pool after workers exit. Here the event thread
        starts a replacement as soon as the engine reports an exit, so there is nothing
        to do; kept for code (and CPython's tests) that call it."""

    def _join_workers(self) -> None:
        self._workers.join_all()
        self._engine.shutdown()

    # -- submitting ----------------------------------------------------------------

    def _new_job(
        self,
        fail_fast: bool,
        callback: Callable[..., object] | None = None,
        error_callback: Callable[..., object] | None = None,
    ) -> _core.PoolJob:
        notify = callback is not None or error_callback is not None
        job: _core.PoolJob = self._engine.new_job(fail_fast, notify)
        return job

    def _register(self, result: ApplyResult) -> ApplyResult:
        if result._notifies:
            self._cache[result._job.id] = result
        return result

    def apply(
        self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: Mapping[str, Any] = {}
    ) -> Any:
        """Call ``func(*args, **kwds)`` in a worker and return its result."""
        self._check_running()
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] = {},
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> ApplyResult:
        """Call ``func(*args, **kwds)`` in a worker; return an ``AsyncResult``."""
        self._check_running()
        token = self._functions.token(func)
        job = self._new_job(True, callback, error_callback)
        result = self._register(ApplyResult(self._engine, job, callback, error_callback))
        self._engine.submit(job, token, APPLY, ((tuple(args), dict(kwds)),), True)
        return result

    def map(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool = False,
    ) -> list[Any]:
        """Apply ``func`` to every item, in parallel; return the results in order."""
        return self._map_now(func, iterable, MAP, chunksize, progress=progress)

    def starmap(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        *,
        progress: bool = False,
    ) -> list[Any]:
        """Like ``map``, calling ``func(*item)``."""
        return self._map_now(func, iterable, STARMAP, chunksize, progress=progress)

    def _map_now(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        kind: int,
        chunksize: int | None,
        *,
        progress: bool,
    ) -> list[Any]:
        result = self._map_async(func, iterable, kind, chunksize)
        if progress:
            return _with_progress(result, len(result._job_lengths))
        return _collect(result)

    def map_async(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult:
        """``map`` returning a ``MapResult``."""
        return self._map_async(
            func, iterable, MAP, chunksize, callback=callback, error_callback=error_callback
        )

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult:
        """``starmap`` returning a ``MapResult``."""
        return self._map_async(
            func, iterable, STARMAP, chunksize, callback=callback, error_callback=error_callback
        )

    def _map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        kind: int,
        chunksize: int | None = None,
        *,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> MapResult:
        self._check_running()
        token = self._functions.token(func)
        items = iterable if hasattr(iterable, "__len__") else list(iterable)
        length = len(items)  # type: ignore[arg-type]
        if chunksize is None:
            chunksize, extra = divmod(length, self._processes * 4)
            if extra:
                chunksize += 1
        if chunksize < 1 and length:
            raise ValueError(f"Chunksize must be 1+, not {chunksize}")
        chunks = list(_chunks(items, max(chunksize, 1)))
        if kind == STARMAP:
            chunks = [[tuple(args) for args in chunk] for chunk in chunks]
        job = self._new_job(True, callback, error_callback)
        result = MapResult(
            self._engine,
            job,
            chunksize=chunksize,
            length=length,
            callback=callback,
            error_callback=error_callback,
        )
        result._job_lengths = [len(chunk) for chunk in chunks]
        self._register(result)
        _submit_in_batches(self._engine, job, token, kind, chunks, workers=self._processes)
        return result

    def imap(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int = 1,
        *,
        buffersize: int | None = None,
    ) -> IMapIterator:
        """Like ``map``, but lazily: an iterator over the results in order. With
        ``buffersize``, at most that many chunks are submitted ahead of the consumer."""
        return self._imap(IMapIterator, func, iterable, chunksize, buffersize)

    def imap_unordered(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int = 1,
        *,
        buffersize: int | None = None,
    ) -> IMapIterator:
        """Like ``imap``, yielding results in the order they finish."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize, buffersize)

    def _imap(
        self,
        iterator_type: type[IMapIterator],
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int,
        buffersize: int | None,
    ) -> IMapIterator:
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        if buffersize is not None and (not isinstance(buffersize, int) or buffersize < 1):
            raise ValueError("buffersize must be None or a positive integer")
        token = self._functions.token(func)
        job = self._engine.new_job(False, False)
        iterator = iterator_type(self._engine, job)
        if buffersize is None and isinstance(iterable, (list, tuple, range)):
            chunks = list(_chunks(iterable, chunksize))
            _submit_in_batches(self._engine, job, token, MAP, chunks, workers=self._processes)
            return iterator
        limit = buffersize if buffersize is not None else self._processes * IN_FLIGHT_PER_WORKER
        feeder = threading.Thread(
            target=_feed,
            kwargs={
                "engine": self._engine,
                "job": job,
                "token": token,
                "items": iter(iterable),
                "chunksize": chunksize,
                "limit": limit,
                "unconsumed": buffersize is not None,
                "iterator": weakref.ref(iterator),
            },
            name="ferroproc-pool-feeder",
            daemon=True,
        )
        feeder.start()
        return iterator


#: From this chunk size on, a chunk of a ``range`` travels as a range, not its items.
RANGE_CHUNK_MIN = 64
#: The most chunks one call hands to the engine (each call encodes its chunks first).
SUBMIT_BATCH_MAX = 1024


def _submit_in_batches(
    engine: Any, job: Any, token: int, kind: int, chunks: list[Any], *, workers: int
) -> None:
    """Submits ``chunks`` and seals the job: a first small batch so the workers start
    at once, then batches twice as large, so that encoding overlaps their work without
    a call per chunk."""
    start, size = 0, max(workers, 1)
    while start + size < len(chunks):
        engine.submit(job, token, kind, chunks[start : start + size])
        start, size = start + size, min(size * 2, SUBMIT_BATCH_MAX)
    engine.submit(job, token, kind, chunks[start:], True)


def _chunks(items: Any, size: int) -> Iterator[Any]:
    if isinstance(items, range) and size >= RANGE_CHUNK_MIN:
        # A slice of a range is a range: it pickles in a few bytes, where its items would
        # have to be made, pickled and unpickled one by one.
        for start in range(0, len(items), size):
            yield items[start : start + size]
        return
    if isinstance(items, (list, tuple)):
        for start in range(0, len(items), size):
            yield list(items[start : start + size])
        return
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _feed(
    *,
    engine: _core.PoolEngine,
    job: _core.PoolJob,
    token: int,
    items: Iterator[Any],
    chunksize: int,
    limit: int,
    unconsumed: bool,
    iterator: weakref.ref[IMapIterator],
) -> None:
    """Submits a lazy input's chunks as room frees up (an ``imap`` feeder thread)."""
    try:
        for chunk in _chunks(items, chunksize):
            while not job.wait_for_room(limit, unconsumed, 1.0):
                if iterator() is None:
                    return
            engine.submit(job, token, MAP, [chunk])
    except BaseException as error:
        it = iterator()
        if it is not None:
            it._feed_error = error
    finally:
        job.seal()


def _collect(result: MapResult) -> list[Any]:
    """The value of a map whose result object nobody else sees: each chunk is unpickled
    as soon as it arrives, while the workers compute the rest, instead of all at the end.
    The first chunk to fail raises, as ``get`` would."""
    from ._pool_results import failure

    job = result._job
    chunks: list[Any] = [None] * len(result._job_lengths)
    while True:
        try:
            found = job.next_finished(None)
        except StopIteration:
            break
        if found is None:
            continue
        index, (kind, detail) = found
        if kind != _core.POOL_RETURNED:
            raise failure(result._engine, (kind, detail))
        chunks[index] = detail
    value: list[Any] = result._assemble(chunks)
    return value


def _with_progress(result: MapResult, total: int) -> list[Any]:
    """Waits for ``result`` while a tqdm bar counts finished chunks."""
    try:
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(
            "progress=True draws its bar with tqdm, which is not installed: pip install tqdm"
        ) from None
    lengths = result._job_lengths
    with tqdm(total=sum(lengths), unit="item") as bar:
        done = 0
        while not result.ready():
            result.wait(0.1)
            finished = result._job.finished
            if finished > done:
                bar.update(sum(lengths[done:finished]))
                done = finished
        bar.update(sum(lengths[done:]))
    value: list[Any] = result.get()
    return value


def __getattr__(name: str) -> Any:
    # ThreadPool lives in its own module, which builds on this one.
    if name == "ThreadPool":
        from ._threadpool import ThreadPool

        return ThreadPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
