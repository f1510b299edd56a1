"""Process-shared synchronisation primitives: the stdlib's ``multiprocessing.synchronize``.

::

    Lock / RLock / Semaphore / BoundedSemaphore ──▶ _core.SemLock ─┐
    Condition ──▶ _core.Condition (+ its lock's SemLock)           ├─▶ a block in a shared
    Event ──▶ _core.Event                                           │   arena (memfd), futex
    Barrier ──▶ _core.Barrier                                       ┘   words, robust locks

Every primitive lives in a block of a shared-memory arena (``heap.py``'s arenas): forked
children inherit the mapping, spawned and fork-server children receive the arena's
descriptor when the primitive is pickled for them, as the stdlib passes semaphore
handles. A lock whose holder dies is taken over by the next acquirer, which is told with
an :class:`OwnerDiedWarning`; nothing waits forever on a dead process.
"""

from __future__ import annotations

import threading

from . import _core, context, heap, process, util
from .context import OwnerDiedWarning

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Lock",
    "OwnerDiedWarning",
    "RLock",
    "Semaphore",
]

RECURSIVE_MUTEX = _core.RECURSIVE_MUTEX
SEMAPHORE = _core.SEMAPHORE
SEM_VALUE_MAX = _core.SEM_VALUE_MAX


class SemLock:
    """Base of the lock and semaphore classes: a ``_core.SemLock`` in a shared arena."""

    acquire: Callable[..., bool]
    release: Callable[[], None]

    def __init__(self, kind: int, value: int, maxvalue: int, *, ctx: Any) -> None:
        # Every start method can share these (forked children inherit the arena mapping,
        # others receive its descriptor), so unlike the stdlib nothing depends on `ctx`.
        self._semlock = heap.place(_core.SemLock, kind, value, maxvalue)
        self._make_methods()
        # A forked child is a different process: it holds nothing, whatever the parent held.
        util.register_after_fork(self, SemLock._after_fork)

    @staticmethod
    def _after_fork(obj: SemLock) -> None:
        obj._semlock._after_fork()

    def _make_methods(self) -> None:
        # Bound straight to the core's methods, as the stdlib binds its C SemLock's: a lock
        # round trip then costs no Python frame. Taking over a dead holder's lock warns
        # (OwnerDiedWarning) from inside `acquire`.
        self.acquire = self._semlock.acquire
        self.release = self._semlock.release

    def __enter__(self) -> bool:
        return self._semlock.__enter__()

    def __exit__(self, *args: object) -> None:
        self._semlock.release()

    def __getstate__(self) -> tuple[Any, ...]:
        context.assert_spawning(self)
        semlock = self._semlock
        semlock._mark_shared()
        return (heap.reduce_arena(semlock.arena), semlock.offset, semlock.kind, semlock.maxvalue)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        arena, offset, kind, maxvalue = state
        self._semlock = _core.SemLock.rebuild(heap.rebuild_arena(arena), offset, kind, maxvalue)
        util.debug("recreated blocker with handle %r", offset)
        self._make_methods()
        util.register_after_fork(self, SemLock._after_fork)

    @property
    def owner_died(self) -> bool:
        """Whether the last acquire in this process took over from a holder that died."""
        return bool(self._semlock.owner_died)


class Semaphore(SemLock):
    """A process-shared counting semaphore."""

    def __init__(self, value: int = 1, *, ctx: Any = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        SemLock.__init__(self, SEMAPHORE, value, SEM_VALUE_MAX, ctx=ctx)

    def get_value(self) -> int:
        """The current value of the semaphore."""
        return int(self._semlock._get_value())

    def __repr__(self) -> str:
        try:
            value: object = self._semlock._get_value()
        except Exception:
            value = "unknown"
        return f"<{type(self).__name__}(value={value})>"


class BoundedSemaphore(Semaphore):
    """A semaphore whose value may not be released above its initial value."""

    def __init__(self, value: int = 1, *, ctx: Any = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        SemLock.__init__(self, SEMAPHORE, value, value, ctx=ctx)

    def __repr__(self) -> str:
        try:
            value: object = self._semlock._get_value()
        except Exception:
            value = "unknown"
        return f"<{type(self).__name__}(value={value}, maxvalue={self._semlock.maxvalue})>"


def _owner_name() -> str:
    name = process.current_process().name
    if threading.current_thread().name != "MainThread":
        name += "|" + threading.current_thread().name
    return name


class Lock(SemLock):
    """A non-recursive lock; like the stdlib's, any process may release it."""

    def __init__(self, *, ctx: Any = None) -> None:
        SemLock.__init__(self, SEMAPHORE, 1, 1, ctx=ctx)

    def __repr__(self) -> str:
        try:
            if self._semlock._is_mine():
                name = _owner_name()
            elif self._semlock._get_value() == 1:
                name = "None"
            elif self._semlock._count() > 0:
                name = "SomeOtherThread"
            else:
                name = "SomeOtherProcess"
        except Exception:
            name = "unknown"
        return f"<{type(self).__name__}(owner={name})>"


class RLock(SemLock):
    """A recursive lock, owned by one thread of one process at a time."""

    def __init__(self, *, ctx: Any = None) -> None:
        SemLock.__init__(self, RECURSIVE_MUTEX, 1, 1, ctx=ctx)

    def __repr__(self) -> str:
        count: object
        try:
            if self._semlock._is_mine():
                name, count = _owner_name(), self._semlock._count()
            elif self._semlock._get_value() == 1:
                name, count = "None", 0
            elif self._semlock._count() > 0:
                name, count = "SomeOtherThread", "nonzero"
            else:
                name, count = "SomeOtherProcess", "nonzero"
        except Exception:
            name, count = "unknown", "unknown"
        return f"<{type(self).__name__}({name}, {count})>"


class _Count:
    """A number read on demand, with a semaphore's ``get_value``."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def get_value(self) -> int:
        return self._read()


class Condition:
    """A condition variable over one of ferroproc's locks (an ``RLock`` by default)."""

    def __init__(self, lock: Lock | RLock | None = None, *, ctx: Any = None) -> None:
        if lock is None:
            lock = RLock(ctx=ctx)
        if not isinstance(lock, SemLock):
            raise TypeError(
                f"a Condition needs a ferroproc Lock or RLock, not {type(lock).__name__}"
            )
        self._lock = lock
        self._cond = heap.place(_core.Condition)
        self._make_methods()

    def __getstate__(self) -> tuple[Any, ...]:
        context.assert_spawning(self)
        self._cond._mark_shared()
        return (self._lock, heap.reduce_arena(self._cond.arena), self._cond.offset)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._lock, arena, offset = state
        self._cond = _core.Condition.rebuild(heap.rebuild_arena(arena), offset)
        self._make_methods()

    def _make_methods(self) -> None:
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: object) -> None:
        return self._lock.__exit__(*args)

    # What CPython's tests read to count a condition's sleepers (the stdlib keeps them in
    # semaphores): here the count comes from the condition's waiter table.
    @property
    def _sleeping_count(self) -> _Count:
        return _Count(self._cond.waiting)

    @property
    def _woken_count(self) -> _Count:
        return _Count(lambda: 0)

    @property
    def _wait_semaphore(self) -> _Count:
        return _Count(lambda: 0)

    def __repr__(self) -> str:
        try:
            waiting: object = self._cond.waiting()
        except Exception:
            waiting = "unknown"
        return f"<{type(self).__name__}({self._lock}, {waiting})>"

    def _check_owned(self, action: str) -> None:
        if not self._lock._semlock._is_mine():
            raise AssertionError(f"must acquire() condition before using {action}")

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait until notified or ``timeout`` passes, reacquire the lock.

        Returns ``False`` if the timeout passed.
        """
        self._check_owned("wait()")
        return bool(self._cond.wait(self._lock._semlock, timeout))

    def notify(self, n: int = 1) -> None:
        """Wake up at most ``n`` of the processes or threads waiting on the condition."""
        self._check_owned("notify()")
        self._cond.notify(self._lock._semlock, n)

    def notify_all(self) -> None:
        """Wake up every process or thread waiting on the condition."""
        self._check_owned("notify_all()")
        self._cond.notify_all(self._lock._semlock)

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until ``predicate()`` is true (or ``timeout`` passes); return its last value."""
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else _monotonic() + timeout
        remaining = timeout
        while not result:
            if deadline is not None:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    break
            self.wait(remaining)
            result = predicate()
        return result


def _monotonic() -> float:
    import time

    return time.monotonic()


class Event:
    """A process-shared flag that processes can wait for."""

    def __init__(self, *, ctx: Any = None) -> None:
        self._event = heap.place(_core.Event)

    def __getstate__(self) -> tuple[Any, ...]:
        context.assert_spawning(self)
        self._event._mark_shared()
        return (heap.reduce_arena(self._event.arena), self._event.offset)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        arena, offset = state
        self._event = _core.Event.rebuild(heap.rebuild_arena(arena), offset)

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return bool(self._event.is_set())

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._event.set()

    def clear(self) -> None:
        """Clear the flag."""
        self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` passes; return the flag."""
        return bool(self._event.wait(timeout))

    def __repr__(self) -> str:
        state = "set" if self.is_set() else "unset"
        return f"<{type(self).__qualname__} at {id(self):#x} {state}>"


class Barrier:
    """A process-shared barrier for ``parties`` processes or threads, as ``threading.Barrier``."""

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        ctx: Any = None,
    ) -> None:
        if parties < 1:
            raise ValueError("parties must be >= 1")
        self._barrier = heap.place(_core.Barrier, parties)
        self._action = action
        self._timeout = timeout

    def __getstate__(self) -> tuple[Any, ...]:
        context.assert_spawning(self)
        self._barrier._mark_shared()
        return (
            heap.reduce_arena(self._barrier.arena),
            self._barrier.offset,
            self._action,
            self._timeout,
        )

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        arena, offset, self._action, self._timeout = state
        self._barrier = _core.Barrier.rebuild(heap.rebuild_arena(arena), offset)

    def wait(self, timeout: float | None = None) -> int:
        """Wait until all parties have called ``wait``; return this party's index.

        The party that completes the round runs ``action`` first; if it raises, the
        barrier breaks. Raises ``threading.BrokenBarrierError`` if the barrier is broken,
        reset, aborted, times out, or a waiting party dies.
        """
        if timeout is None:
            timeout = self._timeout
        ticket = self._barrier.arrive(timeout)
        if not ticket.completes:
            return int(self._barrier.await_release(ticket, timeout))
        if self._action is not None:
            try:
                self._action()
            except BaseException:
                self._barrier.break_barrier()
                raise
        return int(self._barrier.complete(ticket))

    def reset(self) -> None:
        """Return the barrier to its empty state; current waiters get ``BrokenBarrierError``."""
        self._barrier.reset()

    def abort(self) -> None:
        """Break the barrier: current and future waiters get ``BrokenBarrierError``."""
        self._barrier.abort()

    @property
    def parties(self) -> int:
        """The number of parties needed to pass the barrier."""
        return int(self._barrier.parties)

    @property
    def n_waiting(self) -> int:
        """The number of parties currently waiting."""
        return int(self._barrier.n_waiting)

    @property
    def broken(self) -> bool:
        """Whether the barrier is broken."""
        return bool(self._barrier.broken)

    def __repr__(self) -> str:
        if self.broken:
            return f"<{type(self).__qualname__} at {id(self):#x}: broken>"
        return (
            f"<{type(self).__qualname__} at {id(self):#x}: waiters={self.n_waiting}/{self.parties}>"
        )
