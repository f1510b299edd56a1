"""Contexts and start methods: the stdlib's ``multiprocessing.context`` API.

A context object carries one start method; its public methods become the package's
top-level names (``ferroproc.Process``, ``ferroproc.get_context``, ...), exactly as in
the stdlib. Submodules are imported lazily so ``import ferroproc`` stays cheap.
"""

from __future__ import annotations

import os
import sys
import threading

from . import process, reduction

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, ClassVar

    from . import connection, managers, pool, queues, synchronize

__all__: list[str] = []


# --- exceptions ----------------------------------------------------------------------


class ProcessError(Exception):
    """Base class of ferroproc's errors (``multiprocessing.ProcessError``)."""


class BufferTooShort(ProcessError):
    """A receive buffer was too small for the message; the message is ``args[0]``."""


class TimeoutError(ProcessError):
    """An operation on a process or its result timed out."""


class AuthenticationError(ProcessError):
    """The authkey handshake failed."""


class WorkerLostError(ProcessError):
    """The worker process running a task died before it finished (killed by a signal,
    the OOM killer, a crash or ``os._exit``). ``pid`` is the worker's process id and
    ``exitcode`` its exit code, or the negated signal number."""

    def __init__(self, pid: int, exitcode: int) -> None:
        super().__init__(pid, exitcode)
        self.pid = pid
        self.exitcode = exitcode

    def __str__(self) -> str:
        if self.exitcode < 0:
            import signal

            try:
                how = f"was killed by {signal.Signals(-self.exitcode).name}"
            except ValueError:
                how = f"was killed by signal {-self.exitcode}"
        else:
            how = f"exited with code {self.exitcode}"
        return f"the pool worker (pid {self.pid}) {how} while running this task"


class TaskTimeoutError(TimeoutError):
    """A task ran longer than the pool's ``task_timeout``; its worker was killed and
    replaced. A subclass of ``ferroproc.TimeoutError``."""

    def __init__(self, pid: int, timeout: float) -> None:
        super().__init__(pid, timeout)
        self.pid = pid
        self.timeout = timeout

    def __str__(self) -> str:
        return (
            f"the task ran longer than its timeout of {self.timeout:g} s; "
            f"its worker (pid {self.pid}) was killed"
        )


class OwnerDiedWarning(RuntimeWarning):
    """A lock was acquired after its previous holder died while holding it.

    What the dead holder was protecting may be half-updated; the lock itself works. The
    stdlib has no such case: its locks stay locked forever when their holder dies.
    """


# --- contexts ------------------------------------------------------------------------


class BaseContext:
    """The methods shared by every context; each becomes a top-level name."""

    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError
    OwnerDiedWarning = OwnerDiedWarning
    WorkerLostError = WorkerLostError
    TaskTimeoutError = TaskTimeoutError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)

    _name: ClassVar[str | None] = None

    def Pipe(self, duplex: bool = True) -> tuple[connection.Connection, connection.Connection]:
        """Two connected ``Connection`` objects; with ``duplex=False`` the first only
        receives and the second only sends."""
        from .connection import Pipe

        return Pipe(duplex)

    def Manager(self) -> managers.SyncManager:
        """A started ``SyncManager``: a server process holding shared objects, and
        proxies of them for every process that has one."""
        from .managers import SyncManager

        manager = SyncManager(ctx=self.get_context())
        manager.start()
        return manager

    def Lock(self) -> synchronize.Lock:
        """A non-recursive lock shared between processes (robust to its holder dying)."""
        from .synchronize import Lock

        return Lock(ctx=self.get_context())

    def RLock(self) -> synchronize.RLock:
        """A recursive lock shared between processes."""
        from .synchronize import RLock

        return RLock(ctx=self.get_context())

    def Condition(
        self, lock: synchronize.Lock | synchronize.RLock | None = None
    ) -> synchronize.Condition:
        """A condition variable over ``lock`` (a new ``RLock`` if ``None``)."""
        from .synchronize import Condition

        return Condition(lock, ctx=self.get_context())

    def Semaphore(self, value: int = 1) -> synchronize.Semaphore:
        """A counting semaphore shared between processes."""
        from .synchronize import Semaphore

        return Semaphore(value, ctx=self.get_context())

    def BoundedSemaphore(self, value: int = 1) -> synchronize.BoundedSemaphore:
        """A semaphore that cannot be released above its initial value."""
        from .synchronize import BoundedSemaphore

        return BoundedSemaphore(value, ctx=self.get_context())

    def Event(self) -> synchronize.Event:
        """An event flag shared between processes."""
        from .synchronize import Event

        return Event(ctx=self.get_context())

    def Barrier(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> synchronize.Barrier:
        """A barrier for ``parties`` processes."""
        from .synchronize import Barrier

        return Barrier(parties, action, timeout, ctx=self.get_context())

    def Queue(self, maxsize: int = 0, *, capacity: int | None = None) -> queues.Queue:
        """A queue shared between processes, in shared memory (``capacity``: the ring's
        size in bytes, ferroproc's extension)."""
        from .queues import Queue

        return Queue(maxsize, ctx=self.get_context(), capacity=capacity)

    def JoinableQueue(
        self, maxsize: int = 0, *, capacity: int | None = None
    ) -> queues.JoinableQueue:
        """A queue that also counts unfinished tasks (``task_done``, ``join``)."""
        from .queues import JoinableQueue

        return JoinableQueue(maxsize, ctx=self.get_context(), capacity=capacity)

    def SimpleQueue(self, *, capacity: int | None = None) -> queues.SimpleQueue:
        """A queue with only ``put``, ``get``, ``empty`` and ``close``."""
        from .queues import SimpleQueue

        return SimpleQueue(ctx=self.get_context(), capacity=capacity)

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        """A ctypes object in shared memory, without a lock."""
        from .sharedctypes import RawValue

        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        """A ctypes array in shared memory, without a lock."""
        from .sharedctypes import RawArray

        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        """A ctypes object in shared memory, with a lock unless ``lock`` is false."""
        from .sharedctypes import Value

        return Value(typecode_or_type, *args, lock=lock, ctx=self.get_context())

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        """A ctypes array in shared memory, with a lock unless ``lock`` is false."""
        from .sharedctypes import Array

        return Array(typecode_or_type, size_or_initializer, lock=lock, ctx=self.get_context())

    def Pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        **options: Any,
    ) -> pool.Pool:
        """A process pool of this context (see ``ferroproc.pool.Pool``)."""
        from .pool import Pool

        return Pool(
            processes,
            initializer,
            initargs,
            maxtasksperchild,
            context=self.get_context(),
            **options,
        )

    def cpu_count(self) -> int:
        """Return the number of CPUs in the system."""
        count = os.cpu_count()
        if count is None:
            raise NotImplementedError("cannot determine number of cpus")
        return count

    def freeze_support(self) -> None:
        """Run the child's code when a frozen executable was started as a spawn child.

        Only frozen Windows programs need it; elsewhere it does nothing, as in the stdlib.
        """
        if sys.platform == "win32" and getattr(sys, "frozen", False):  # pragma: no cover
            from .spawn import freeze_support

            freeze_support()

    def get_logger(self) -> logging.Logger:
        """Return the package logger, creating it if needed."""
        from .util import get_logger

        return get_logger()

    def log_to_stderr(self, level: int | str | None = None) -> logging.Logger:
        """Turn on logging to standard error and return the logger."""
        from .util import log_to_stderr

        return log_to_stderr(level)

    def allow_connection_pickling(self) -> None:
        """Kept for compatibility: connections are always picklable for children."""

    def set_executable(self, executable: str | os.PathLike[str]) -> None:
        """Set the interpreter that spawn and forkserver children run."""
        from .spawn import set_executable

        set_executable(executable)

    def set_forkserver_preload(self, module_names: Sequence[str]) -> None:
        """Modules the fork server imports once so its children start with them loaded."""
        from .forkserver import set_forkserver_preload

        set_forkserver_preload(module_names)

    def get_context(self, method: str | None = None) -> BaseContext:
        """Return the context for ``method`` (the default start method if ``None``)."""
        if method is None:
            return self
        try:
            ctx = _concrete_contexts[method]
        except KeyError:
            raise ValueError(f"cannot find context for {method!r}") from None
        ctx._check_available()
        return ctx

    def get_start_method(self, allow_none: bool = False) -> str | None:
        """Return this context's start method."""
        return self._name

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        raise ValueError("cannot set start method of concrete context")

    @property
    def reducer(self) -> Any:
        """What pickles objects for children: ``ferroproc.reduction`` unless replaced.

        As in the stdlib, setting it replaces the reducer for every context.
        """
        return reduction

    @reducer.setter
    def reducer(self, value: Any) -> None:
        global reduction
        reduction = value

    def _check_available(self) -> None:
        pass


class Process(process.BaseProcess):
    """A process started with the default context's start method."""

    _start_method = None

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        return _default_context.get_context().Process._Popen(process_obj)  # type: ignore[attr-defined]

    @staticmethod
    def _after_fork() -> None:
        return _default_context.get_context().Process._after_fork()  # type: ignore[attr-defined, no-any-return]


class DefaultContext(BaseContext):
    """The module-level context: its start method can be chosen once."""

    Process = Process

    def __init__(self, context: BaseContext) -> None:
        self._default_context = context
        self._actual_context: BaseContext | None = None

    def get_context(self, method: str | None = None) -> BaseContext:
        if method is None:
            if self._actual_context is None:
                self._actual_context = self._default_context
            return self._actual_context
        return super().get_context(method)

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        """Choose the start method once; ``force=True`` changes (or with ``None`` clears) it."""
        if self._actual_context is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            self._actual_context = None
            return
        self._actual_context = self.get_context(method)

    def get_start_method(self, allow_none: bool = False) -> str | None:
        if self._actual_context is None:
            if allow_none:
                return None
            self._actual_context = self._default_context
        return self._actual_context._name

    def get_all_start_methods(self) -> list[str]:
        """The start methods available here, the default first."""
        default = self._default_context._name
        assert default is not None
        return [default] + [m for m in ("fork", "spawn", "forkserver") if m != default]


class ForkProcess(process.BaseProcess):
    _start_method = "fork"

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        from .popen_fork import Popen

        return Popen(process_obj)


class SpawnProcess(process.BaseProcess):
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        from .popen_spawn_posix import Popen

        return Popen(process_obj)

    @staticmethod
    def _after_fork() -> None:
        # A spawned child starts fresh: there are no inherited finalizers to clear.
        pass


class ForkServerProcess(process.BaseProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        from .popen_forkserver import Popen

        return Popen(process_obj)


class ForkContext(BaseContext):
    _name = "fork"
    Process = ForkProcess


class SpawnContext(BaseContext):
    _name = "spawn"
    Process = SpawnProcess


class ForkServerContext(BaseContext):
    _name = "forkserver"
    Process = ForkServerProcess


_concrete_contexts: dict[str, BaseContext] = {
    "fork": ForkContext(),
    "spawn": SpawnContext(),
    "forkserver": ForkServerContext(),
}

# The running Python's own default: fork until 3.14, forkserver from then on.
_default_method = "forkserver" if sys.version_info >= (3, 14) else "fork"
_default_context = DefaultContext(_concrete_contexts[_default_method])


def _force_start_method(method: str) -> None:
    """In a child: adopt the start method that created it."""
    _default_context._actual_context = _concrete_contexts[method]


# --- spawning state ------------------------------------------------------------------

_tls = threading.local()


def get_spawning_popen() -> Any:
    """The launcher currently pickling a process object for a child, or ``None``."""
    return getattr(_tls, "spawning_popen", None)


def set_spawning_popen(popen: Any) -> None:
    _tls.spawning_popen = popen


def assert_spawning(obj: object) -> None:
    """Raise unless ``obj`` is being pickled to start a child process."""
    if get_spawning_popen() is None:
        raise RuntimeError(
            f"{type(obj).__name__} objects should only be shared between processes "
            "through inheritance"
        )
