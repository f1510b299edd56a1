"""The objects a pool hands back: ``AsyncResult`` (``ApplyResult``), ``MapResult``,
``IMapIterator`` and ``IMapUnorderedIterator``.

Each wraps a ``_core.PoolJob``: the engine's collector thread fills it as workers report,
without the GIL, and a result's ``get`` waits on it with the GIL released. Values are
unpickled by the thread that asks for them. A result with a callback is also registered
in its pool's cache; the pool's event thread runs the callback when the job is ready,
and ``get``/``wait`` then wait for the callback too, as in the stdlib.
"""

from __future__ import annotations

import pickle
import threading
import types

from . import _core
from .context import ProcessError, TaskTimeoutError, TimeoutError, WorkerLostError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any, Callable

__all__ = [
    "ApplyResult",
    "AsyncResult",
    "IMapIterator",
    "IMapUnorderedIterator",
    "MapResult",
    "RemoteTraceback",
    "TaskTimeoutError",
    "WorkerLostError",
]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _raised(report: tuple[str, str, bytes | None]) -> BaseException:
    """The exception a worker reported, with its traceback as ``__cause__``; a
    ``MaybeEncodingError`` if it cannot be rebuilt here."""
    text, summary, pickled = report
    exc: BaseException | None = None
    reason: BaseException | None = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except BaseException as error:
            reason = error
    if exc is None:
        from .pool import MaybeEncodingError

        why = reason if reason is not None else "the exception could not be pickled"
        exc = MaybeEncodingError(why, summary)
    if text:
        exc.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
    return exc


def failure(engine: Any, outcome: tuple[int, Any]) -> BaseException:
    """The exception for a task outcome that is not a return."""
    kind, detail = outcome
    if kind == _core.POOL_RAISED:
        return _raised_outcome(engine, detail)
    if kind == _core.POOL_WORKER_LOST:
        return WorkerLostError(*detail)
    if kind == _core.POOL_TIMED_OUT:
        return TaskTimeoutError(*detail)
    if kind == _core.POOL_UNDECODABLE:
        from .pool import MaybeEncodingError

        return MaybeEncodingError(detail, "a result")
    broken = getattr(engine, "broken", None)
    if broken:
        return ProcessError(broken)
    return ProcessError("the pool was terminated before this task finished")


def _raised_outcome(engine: Any, detail: Any) -> BaseException:
    if isinstance(detail, BaseException):
        return detail  # from a thread pool: the exception itself
    try:
        report = engine.decode(detail)
    except BaseException as error:
        from .pool import MaybeEncodingError

        return MaybeEncodingError(error, "an exception report")
    return _raised(report)


#: Held while a result takes its outcome from its job, so two threads calling ``get`` at
#: once unpickle it once. One lock for all results: it is held only for that moment, and
#: a lock per result would cost more than it saves.
_GATHERING = threading.RLock()


class ApplyResult:
    """The result of ``Pool.apply_async``; also awaitable from asyncio."""

    def __init__(
        self,
        engine: _core.PoolEngine,
        job: _core.PoolJob,
        callback: Callable[[Any], object] | None,
        error_callback: Callable[[BaseException], object] | None,
    ) -> None:
        self._engine = engine
        self._job = job
        self._callback = callback
        self._error_callback = error_callback
        self._outcome: tuple[bool, Any] | None = None
        self._delivered: threading.Event | None = None
        if callback is not None or error_callback is not None:
            self._delivered = threading.Event()

    @property
    def _notifies(self) -> bool:
        return self._delivered is not None

    def ready(self) -> bool:
        """Whether the call has completed."""
        if self._delivered is not None:
            return self._delivered.is_set()
        return self._outcome is not None or self._job.ready()

    def successful(self) -> bool:
        """Whether the call completed without raising; ``ValueError`` if not ready."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._gather()[0]

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the result is available or ``timeout`` seconds pass."""
        if self._delivered is not None:
            _wait_event(self._delivered, timeout)
        elif self._outcome is None:
            self._job.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """Return the result, or raise the exception the call raised; ``TimeoutError``
        if it is not available within ``timeout`` seconds."""
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        success, value = self._gather()
        if success:
            return value
        raise value

    def _assemble(self, values: list[Any]) -> Any:
        return values[0]

    def _gather(self) -> tuple[bool, Any]:
        with _GATHERING:
            if self._outcome is None:
                success, detail = self._job.take_all()
                if success:
                    self._outcome = (True, self._assemble(detail))
                else:
                    self._outcome = (False, failure(self._engine, detail))
            return self._outcome

    def _deliver(self) -> None:
        """Run the callback (in the pool's event thread), then release the waiters."""
        try:
            success, value = self._gather()
            if success and self._callback is not None:
                self._callback(value)
            elif not success and self._error_callback is not None:
                self._error_callback(value)
        finally:
            if self._delivered is not None:
                self._delivered.set()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._await().__await__()

    async def _await(self) -> Any:
        if not self.ready():
            import asyncio

            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.wait)
        return self.get(0)

    __class_getitem__: Any = classmethod(types.GenericAlias)

    def __repr__(self) -> str:
        state = "ready" if self.ready() else "pending"
        return f"<{type(self).__module__}.{type(self).__qualname__} job={self._job.id} {state}>"


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of ``Pool.map_async``/``starmap_async``: a list in input order."""

    def __init__(
        self,
        engine: _core.PoolEngine,
        job: _core.PoolJob,
        *,
        chunksize: int,
        length: int,
        callback: Callable[[Any], object] | None,
        error_callback: Callable[[BaseException], object] | None,
    ) -> None:
        super().__init__(engine, job, callback, error_callback)
        self._chunksize = chunksize
        self._length = length
        self._job_lengths: list[int] = []

    def _assemble(self, values: list[Any]) -> Any:
        if len(values) == 1:
            return values[0]
        # Chunks are lists: extending copies pointers, where chain() iterates item by item.
        out: list[Any] = []
        for chunk in values:
            out += chunk
        return out


class IMapIterator:
    """The iterator ``Pool.imap`` returns: results in input order, each as soon as it and
    those before it are done. ``next(timeout)`` raises ``TimeoutError`` after
    ``timeout`` seconds."""

    _unordered = False

    def __init__(self, engine: _core.PoolEngine, job: _core.PoolJob) -> None:
        self._engine = engine
        self._job = job
        self._chunk: list[Any] = []
        self._position = 0
        self._feed_error: BaseException | None = None
        self._done = False

    def __iter__(self) -> IMapIterator:
        return self

    def next(self, timeout: float | None = None) -> Any:
        """The next result, waiting at most ``timeout`` seconds for it."""
        while self._position >= len(self._chunk):
            if self._done:
                raise StopIteration
            outcome = self._next_outcome(timeout)
            if outcome is None:
                raise TimeoutError
            if outcome is StopIteration:
                self._done = True
                if self._feed_error is not None:
                    error, self._feed_error = self._feed_error, None
                    raise error
                raise StopIteration
            kind, detail = outcome
            if kind != _core.POOL_RETURNED:
                raise failure(self._engine, outcome)
            self._chunk, self._position = detail, 0
        value = self._chunk[self._position]
        self._position += 1
        return value

    __next__ = next

    def _next_outcome(self, timeout: float | None) -> Any:
        try:
            if self._unordered:
                found = self._job.next_finished(timeout)
                return None if found is None else found[1]
            return self._job.next_ordered(timeout)
        except StopIteration:
            return StopIteration

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} job={self._job.id}>"


class IMapUnorderedIterator(IMapIterator):
    """The iterator ``Pool.imap_unordered`` returns: results as they finish."""

    _unordered = True


def _wait_event(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)`` in slices, so Ctrl-C interrupts it promptly."""
    if timeout is not None:
        return event.wait(timeout)
    while not event.wait(_core.WAIT_TICK):
        pass
    return True
