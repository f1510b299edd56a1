"""The multiprocessing API over threads: the stdlib's ``multiprocessing.dummy``.

Code written against ``ferroproc`` (or ``multiprocessing``) runs on threads of the current
interpreter by importing this module instead: for I/O-bound work, where processes cost
more than they give. ``Process`` is a ``threading.Thread`` with the ``Process`` API, the
synchronisation primitives are ``threading``'s, ``Queue`` is ``queue.Queue``, ``Value``,
``Array`` and ``Namespace`` are plain objects shared by reference, ``Manager()`` returns
this module, and ``Pool()`` is a :class:`ferroproc.pool.ThreadPool`.

Threads share one address space, so nothing here goes through ferroproc's engine: the
mechanisms are the standard library's threading ones, as in the stdlib's own module.
"""

from __future__ import annotations

import array
import builtins
import sys
import threading
import weakref
from queue import Queue
from threading import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore

from .connection import Pipe

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import ModuleType
    from typing import Any

    from ..pool import ThreadPool  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Pipe",
    "Pool",
    "Process",
    "Queue",
    "RLock",
    "Semaphore",
    "active_children",
    "current_process",
    "freeze_support",
]

# The attribute of a thread that holds the dummy processes it started (weakly, so a
# finished and forgotten process disappears on its own).
_CHILDREN = "_children"


def _children_of(
    thread: threading.Thread, create: bool = False
) -> weakref.WeakKeyDictionary[DummyProcess, None] | None:
    children: weakref.WeakKeyDictionary[DummyProcess, None] | None = getattr(
        thread, _CHILDREN, None
    )
    if children is None and create:
        children = weakref.WeakKeyDictionary()
        setattr(thread, _CHILDREN, children)
    return children


class DummyProcess(threading.Thread):
    """A thread with the ``Process`` API: ``start``, ``join``, ``is_alive``, ``name``,
    ``daemon``, and an ``exitcode`` that is ``None`` until the thread has run, then 0.

    A process can only be started by the thread that created it, which then lists it in
    :func:`active_children` while it runs.
    """

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        super().__init__(group, target, name, args, kwargs, daemon=daemon)
        self._children: weakref.WeakKeyDictionary[DummyProcess, None] = weakref.WeakKeyDictionary()
        self._start_called = False
        self._parent = threading.current_thread()

    def start(self) -> None:
        """Start the thread; only the thread that created this process may."""
        current = threading.current_thread()
        if self._parent is not current:
            raise RuntimeError(
                f"{self!r} was created by {self._parent!r}; it cannot be started by {current!r}"
            )
        self._start_called = True
        children = _children_of(self._parent, create=True)
        assert children is not None
        children[self] = None
        super().start()

    @property
    def exitcode(self) -> int | None:
        """0 once the thread has been started and has finished, else ``None``."""
        if self._start_called and not self.is_alive():
            return 0
        return None


Process = DummyProcess

#: The current "process": the current thread.
current_process = threading.current_thread

# The importing thread (normally the main thread) keeps a registry from the start, as in
# the stdlib; other threads get one when they first start a process.
_children_of(threading.current_thread(), create=True)


def active_children() -> builtins.list[DummyProcess]:
    """The processes started by the current thread that are still running."""
    children = _children_of(threading.current_thread())
    if children is None:
        return []
    for child in builtins.list(children):
        if not child.is_alive():
            children.pop(child, None)
    return builtins.list(children)


def freeze_support() -> None:
    """Do nothing: threads need no support in frozen executables."""


class Namespace:
    """An object whose attributes are the keyword arguments it was made with.

    Its ``repr`` lists the public attributes in alphabetical order.
    """

    def __init__(self, /, **kwds: Any) -> None:
        self.__dict__.update(kwds)

    def __repr__(self) -> str:
        items = sorted(
            f"{name}={value!r}" for name, value in self.__dict__.items() if not name.startswith("_")
        )
        return f"{type(self).__name__}({', '.join(items)})"


dict = builtins.dict
list = builtins.list


def Array(typecode: str, sequence: Iterable[Any], lock: object = True) -> array.array[Any]:
    """A plain ``array.array`` of ``typecode``; ``lock`` is ignored."""
    return array.array(typecode, sequence)


class Value:
    """A box around ``value`` with a ``value`` attribute; ``typecode`` is only recorded,
    and ``lock`` is ignored."""

    def __init__(self, typecode: Any, value: Any, lock: object = True) -> None:
        self._typecode = typecode
        self._value = value

    @property
    def value(self) -> Any:
        """The boxed value."""
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._typecode!r}, {self._value!r})>"


def Manager() -> ModuleType:
    """This module, which has the factories a manager has (``Queue``, ``Lock``, ...)."""
    return sys.modules[__name__]


def shutdown() -> None:
    """Do nothing: there is no manager process to stop."""


def Pool(
    processes: int | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: Iterable[Any] = (),
) -> ThreadPool:
    """A pool of ``processes`` worker threads: a :class:`ferroproc.pool.ThreadPool`."""
    from ..pool import ThreadPool  # type: ignore[import-not-found, unused-ignore]

    return ThreadPool(processes, initializer, initargs)  # type: ignore[no-any-return, unused-ignore]


JoinableQueue = Queue
