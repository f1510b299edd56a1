"""Pickling for children: the stdlib's ``multiprocessing.reduction`` API.

``ForkingPickler`` is a ``pickle.Pickler`` with a registry of extra reducers, so objects
that plain pickle refuses (bound methods, method descriptors, ``functools.partial`` of
those) can be sent to a child.
"""

from __future__ import annotations

import copyreg
import functools
import io
import pickle
import socket

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Callable, ClassVar

__all__ = [
    "AbstractReducer",
    "DupFd",
    "ForkingPickler",
    "dump",
    "recv_handle",
    "recvfds",
    "register",
    "send_handle",
    "sendfds",
]

HAVE_SEND_HANDLE = True
#: The receiver of descriptors does not acknowledge them (needed on macOS only).
ACKNOWLEDGE = False


class ForkingPickler(pickle.Pickler):
    """A pickler that also knows the reducers registered with ``register``."""

    _extra_reducers: ClassVar[dict[type, Callable[[Any], Any]]] = {}
    _copyreg_dispatch_table = copyreg.dispatch_table
    # The merged table, rebuilt when either source changes: copying it for every pickler
    # (as the stdlib does) costs more than pickling a small object.
    _merged_table: ClassVar[dict[type, Callable[[Any], Any]]] = {}
    _merged_from: ClassVar[tuple[int, int] | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatch_table = self._current_table()

    @classmethod
    def _current_table(cls) -> dict[type, Callable[[Any], Any]]:
        sources = (len(cls._copyreg_dispatch_table), len(cls._extra_reducers))
        if cls._merged_from != sources:
            merged = cls._copyreg_dispatch_table.copy()
            merged.update(cls._extra_reducers)
            cls._merged_table = merged
            cls._merged_from = sources
        return cls._merged_table

    @classmethod
    def register(cls, type_: type, reduce: Callable[[Any], Any]) -> None:
        """Use ``reduce`` to pickle objects of ``type_``."""
        cls._extra_reducers[type_] = reduce
        cls._merged_from = None

    @classmethod
    def dumps(
        cls,
        obj: Any,
        protocol: int | None = None,
        buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None,
    ) -> memoryview:
        """Pickle ``obj`` and return the bytes as a memoryview.

        ``buffer_callback`` is ``pickle``'s (protocol 5): buffers it returns a false value
        for are left out of the pickle, for the caller to carry beside it.
        """
        buf = io.BytesIO()
        cls(buf, protocol, buffer_callback=buffer_callback).dump(obj)
        return buf.getbuffer()

    loads = staticmethod(pickle.loads)


register = ForkingPickler.register


def dump(obj: Any, file: Any, protocol: int | None = None) -> None:
    """Replacement for ``pickle.dump`` using ``ForkingPickler``."""
    ForkingPickler(file, protocol).dump(obj)


def _reduce_method(method: Any) -> tuple[Any, ...]:
    if method.__self__ is None:
        return getattr, (method.__class__, method.__func__.__name__)
    return getattr, (method.__self__, method.__func__.__name__)


class _C:
    def f(self) -> None:
        pass


register(type(_C().f), _reduce_method)


def _reduce_method_descriptor(method: Any) -> tuple[Any, ...]:
    return getattr, (method.__objclass__, method.__name__)


register(type(list.append), _reduce_method_descriptor)
register(type(int.__add__), _reduce_method_descriptor)


def _reduce_partial(p: functools.partial[Any]) -> tuple[Any, ...]:
    return _rebuild_partial, (p.func, p.args, p.keywords or {})


def _rebuild_partial(
    func: Callable[..., Any], args: tuple[Any, ...], keywords: dict[str, Any]
) -> Any:
    return functools.partial(func, *args, **keywords)


register(functools.partial, _reduce_partial)


def sendfds(sock: Any, fds: Sequence[int]) -> None:
    """Send the descriptors ``fds`` over the Unix socket ``sock`` (an object with
    ``fileno()``, or a descriptor), in the stdlib's format."""
    from . import _core

    _core.send_fds(_fileno(sock), list(fds))


def recvfds(sock: Any, size: int) -> list[int]:
    """Receive at most ``size`` descriptors sent by :func:`sendfds` over ``sock``; the new
    descriptors belong to the caller. ``EOFError`` if the peer closed the socket."""
    from . import _core

    fds = _core.recv_fds(_fileno(sock), size)
    assert fds is not None  # no timeout was given
    return fds


def send_handle(conn: Any, handle: int, destination_pid: int) -> None:
    """Send the descriptor ``handle`` to the process at the other end of the connection
    ``conn`` (``destination_pid`` is only needed on Windows)."""
    sendfds(conn, [handle])


def recv_handle(conn: Any) -> int:
    """Receive a descriptor sent by :func:`send_handle` over the connection ``conn``."""
    return recvfds(conn, 1)[0]


def _fileno(obj: Any) -> int:
    return obj if isinstance(obj, int) else int(obj.fileno())


class AbstractReducer:
    """Base for a custom ``reducer`` set on a context (``ctx.reducer = MyReducer()``)."""

    ForkingPickler = ForkingPickler
    register = register
    dump = dump
    send_handle = send_handle
    recv_handle = recv_handle
    sendfds = sendfds
    recvfds = recvfds


class _DupFd:
    """A descriptor on its way to a child being started; ``detach`` gives it in the child."""

    __slots__ = ("handle", "via_forkserver")

    def __init__(self, handle: int, via_forkserver: bool) -> None:
        self.handle = handle
        self.via_forkserver = via_forkserver

    def __reduce__(self) -> tuple[Any, ...]:
        return _DupFd, (self.handle, self.via_forkserver)

    def detach(self) -> int:
        """The descriptor, in the child that received it."""
        if self.via_forkserver:
            from .forkserver import get_inherited_fds

            fds = get_inherited_fds()
            if fds is None:
                raise RuntimeError("no descriptors were inherited from a fork server")
            return fds[self.handle]
        return self.handle


def DupFd(fd: int) -> Any:
    """A picklable stand-in for ``fd``; unpickle it and call ``detach()`` to get the
    descriptor in the receiving process.

    While a process object is being pickled for a spawn or fork-server child, the
    descriptor travels with the child's start-up. At any other time it is offered by this
    process's resource sharer (``resource_sharer.DupFd``) and received over a socket.
    """
    from .context import get_spawning_popen

    popen = get_spawning_popen()
    if popen is None:
        from .resource_sharer import DupFd as SharedFd

        return SharedFd(fd)
    return _DupFd(popen.duplicate_for_child(fd), popen.method == "forkserver")


def _reduce_socket(sock: socket.socket) -> tuple[Any, ...]:
    """A socket travels as a duplicate of its descriptor, rebuilt with the same family,
    type and protocol (as the stdlib's ``multiprocessing.reduction`` does)."""
    return _rebuild_socket, (DupFd(sock.fileno()), sock.family, sock.type, sock.proto)


def _rebuild_socket(duplicate: Any, family: int, type_: int, proto: int) -> socket.socket:
    return socket.socket(family, type_, proto, fileno=duplicate.detach())


register(socket.socket, _reduce_socket)
