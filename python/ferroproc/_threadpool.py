"""``ThreadPool``: ``Pool``'s API on threads of this process (the stdlib's
``multiprocessing.pool.ThreadPool``, and ``ferroproc.dummy.Pool``).

Threads share the interpreter, so nothing is pickled: tasks, values and exceptions pass
as they are. The thread engine offers the same interface as ``_core.PoolEngine`` and
``_core.PoolJob``, so the result objects and the pool's methods are ``Pool``'s own.
"""

from __future__ import annotations

import collections
import os
import queue
import threading

from . import _core, util
from ._pool_worker import run
from .pool import INIT, RUN, Pool, _Functions, _handle_events

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Callable

__all__ = ["ThreadPool"]


class _ThreadJob:
    """A ``_core.PoolJob`` whose outcomes are objects of this process."""

    def __init__(
        self, ident: int, fail_fast: bool, notify: bool, events: queue.SimpleQueue[Any]
    ) -> None:
        self.id = ident
        self._fail_fast = fail_fast
        self._notify = notify
        self._events = events
        self._cond = threading.Condition(threading.Lock())
        self._total: int | None = None
        self.submitted = 0
        self.finished = 0
        self._outcomes: dict[int, tuple[int, Any]] = {}
        self._order: collections.deque[int] = collections.deque()
        self._next = 0
        self._consumed = 0
        self._first_failure: int | None = None

    def _add(self, count: int) -> int:
        with self._cond:
            first = self.submitted
            self.submitted += count
            return first

    def _ready(self) -> bool:
        done = self._total is not None and self.finished >= self._total
        return done or (self._fail_fast and self._first_failure is not None)

    def _finish(self, index: int, outcome: tuple[int, Any]) -> None:
        with self._cond:
            was_ready = self._ready()
            if outcome[0] != _core.POOL_RETURNED and self._first_failure is None:
                self._first_failure = index
            self._outcomes[index] = outcome
            self.finished += 1
            self._order.append(index)
            became_ready = self._ready() and not was_ready
            self._cond.notify_all()
        if became_ready and self._notify:
            self._events.put(("ready", self.id))

    def seal(self) -> None:
        with self._cond:
            self._total = self.submitted
            became_ready = self._ready()
            self._cond.notify_all()
        if became_ready and self._notify:
            self._events.put(("ready", self.id))

    def ready(self) -> bool:
        with self._cond:
            return self._ready()

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(self._ready, timeout)

    def take_all(self) -> tuple[bool, Any]:
        with self._cond:
            if self._first_failure is not None:
                return False, self._outcomes[self._first_failure]
            values = [self._outcomes.pop(i)[1] for i in range(self._total or 0)]
            return True, values

    def _exhausted(self, position: int) -> bool:
        return self._total is not None and position >= self._total

    def next_ordered(self, timeout: float | None = None) -> Any:
        with self._cond:
            self._cond.wait_for(
                lambda: self._next in self._outcomes or self._exhausted(self._next), timeout
            )
            if self._next in self._outcomes:
                outcome = self._outcomes.pop(self._next)
                self._next += 1
                self._consumed += 1
                self._cond.notify_all()
                return outcome
            if self._exhausted(self._next):
                raise StopIteration
            return None

    def next_finished(self, timeout: float | None = None) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: self._order or self._exhausted(self._consumed), timeout)
            if self._order:
                index = self._order.popleft()
                self._consumed += 1
                self._cond.notify_all()
                return index, self._outcomes.pop(index)
            if self._exhausted(self._consumed):
                raise StopIteration
            return None

    def wait_for_room(
        self, limit: int, unconsumed: bool = False, timeout: float | None = None
    ) -> bool:
        def room() -> bool:
            done = self._consumed if unconsumed else self.finished
            return self.submitted - done < max(limit, 1)

        with self._cond:
            return self._cond.wait_for(room, timeout)


class _ThreadEngine:
    """Worker threads behind ``_core.PoolEngine``'s interface."""

    def __init__(
        self, size: int, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]
    ) -> None:
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._functions: dict[int, Callable[..., Any]] = {}
        self._next_job = 1
        self._lock = threading.Lock()
        self._running = size
        self.closed = False
        self.terminated = False
        #: Threads running a task now: after terminate, join leaves them to finish it.
        self.busy: set[threading.Thread] = set()
        self.threads = [
            threading.Thread(
                target=self._work,
                args=(initializer, initargs),
                name=f"ThreadPoolWorker-{i + 1}",
                daemon=True,
            )
            for i in range(size)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
        try:
            if initializer is not None:
                initializer(*initargs)
            me = threading.current_thread()
            while (task := self._tasks.get()) is not None:
                job, index, token, kind, data = task
                self.busy.add(me)
                try:
                    value = run(self._functions[token], kind, data)
                except BaseException as exc:
                    job._finish(index, (_core.POOL_RAISED, exc))
                else:
                    job._finish(index, (_core.POOL_RETURNED, value))
                # Drop every reference to the task before waiting for the next one
                # (gh-74046: arguments and results must not outlive their task).
                task = job = value = data = None
                self.busy.discard(me)
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self._events.put(("finished",))

    def define(self, token: int, function: Callable[..., Any]) -> None:
        self._functions[token] = function

    def forget(self, token: int) -> None:
        self._functions.pop(token, None)

    def new_job(self, fail_fast: bool = True, notify: bool = False) -> _ThreadJob:
        with self._lock:
            ident, self._next_job = self._next_job, self._next_job + 1
        return _ThreadJob(ident, fail_fast, notify, self._events)

    def submit(
        self, job: _ThreadJob, token: int, kind: int, tasks: Iterable[Any], seal: bool = False
    ) -> int:
        if self.closed:
            raise ValueError("the pool is not running")
        tasks = list(tasks)
        first = job._add(len(tasks))
        for offset, task in enumerate(tasks):
            self._tasks.put((job, first + offset, token, kind, task))
        if seal:
            job.seal()
        return len(tasks)

    def next_event(self, timeout: float | None = None) -> Any:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for _ in self.threads:
                self._tasks.put(None)

    def terminate(self) -> None:
        # Threads cannot be killed: tasks not started are cancelled, running ones finish
        # on their own, and the pool counts as finished now (as the stdlib's does).
        self.closed = True
        if not self.terminated:
            self.terminated = True
            self._events.put(("finished",))
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[0]._finish(task[1], (_core.POOL_CANCELLED, None))
        for _ in self.threads:
            self._tasks.put(None)

    def shutdown(self) -> None:
        # After terminate, as with the stdlib, a thread still running a task is left to
        # finish it on its own (it is a daemon): join must not wait for it.
        terminated = self.terminated
        self.terminate()
        if terminated:
            return
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join()

    def decode(self, data: Any) -> Any:
        return data


def _terminate_threads(engine: _ThreadEngine, thread: threading.Thread) -> None:
    engine.terminate()
    if thread.is_alive() and thread is not threading.current_thread():
        thread.join()
    engine.shutdown()


class ThreadPool(Pool):
    """A pool of worker threads with ``Pool``'s API."""

    _wrap_exception = False

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        self._state = INIT
        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes
        self._engine = _ThreadEngine(processes, initializer, tuple(initargs))
        self._functions = _Functions(self._engine)
        self._cache = {}
        self._pool = self._engine.threads
        self._event_thread = threading.Thread(
            target=_handle_events,
            args=(self._engine, self._cache),
            name="ferroproc-threadpool-events",
            daemon=True,
        )
        self._event_thread.start()
        self._terminate = util.Finalize(
            self, _terminate_threads, args=(self._engine, self._event_thread), exitpriority=15
        )
        self._state = RUN

    def _join_workers(self) -> None:
        # After terminate, threads still running a task are left to finish it (daemons),
        # as with the stdlib: only a closed pool waits for its tasks.
        terminated = self._engine.terminated
        for thread in self._pool:
            if not (terminated and thread in self._engine.busy):
                thread.join()
