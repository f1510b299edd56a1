"""Handing descriptors to processes that are already running: ``multiprocessing.resource_sharer``.

A descriptor pickled while no child is being started (a ``Connection`` sent over a
``Connection``, say) cannot travel with a child's start-up. Instead, the sending process
keeps a duplicate and offers it on a private listener; the unpickling process connects
(authenticated with its ``authkey``), names the duplicate it wants, and receives it as an
``SCM_RIGHTS`` message (``reduction.send_handle``). Each duplicate is handed out once and
then closed. A daemon thread serves the listener, started on first use; a forked child
starts afresh, without its parent's offers.

As in the stdlib, an offer lives until it is taken or the process exits: a pickle that is
never unpickled keeps its duplicate open.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from . import process, reduction, util

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .connection import Connection

__all__ = ["DupFd", "stop"]


class DupFd:
    """A duplicate of a descriptor, offered until another process takes it with
    :meth:`detach` (which must happen at most once)."""

    def __init__(self, fd: int) -> None:
        duplicate = os.dup(fd)

        def send(conn: Connection, pid: int) -> None:
            reduction.send_handle(conn, duplicate, pid)

        def close() -> None:
            os.close(duplicate)

        self._id = _resource_sharer.register(send, close)

    def detach(self) -> int:
        """The descriptor, received from the process that offered it."""
        with _resource_sharer.get_connection(self._id) as conn:
            return reduction.recv_handle(conn)


class _ResourceSharer:
    """The offers of this process, and the thread that hands them out."""

    def __init__(self) -> None:
        self._key = 0
        self._offers: dict[int, tuple[Callable[[Connection, int], None], Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._listener: Any = None
        self._address: Any = None
        self._thread: threading.Thread | None = None
        util.register_after_fork(self, _ResourceSharer._after_fork)

    def register(
        self, send: Callable[[Connection, int], None], close: Callable[[], None]
    ) -> tuple[Any, int]:
        """Offer a resource; returns the identifier a taker presents."""
        with self._lock:
            if self._address is None:
                self._start()
            self._key += 1
            self._offers[self._key] = (send, close)
            return (self._address, self._key)

    @staticmethod
    def get_connection(ident: tuple[Any, int]) -> Connection:
        """A connection to the offering process, on which the resource arrives."""
        from .connection import Client

        address, key = ident
        conn = Client(address, authkey=process.current_process().authkey)
        conn.send((key, os.getpid()))
        return conn

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving and close every offer not taken yet."""
        from .connection import Client

        with self._lock:
            if self._address is not None:
                with Client(self._address, authkey=process.current_process().authkey) as conn:
                    conn.send(None)
                assert self._thread is not None
                self._thread.join(timeout)
                if self._thread.is_alive():
                    util.sub_warning("_ResourceSharer thread did not stop when asked")
                self._listener.close()
                self._thread = None
                self._address = None
                self._listener = None
            for _, close in self._offers.values():
                close()
            self._offers.clear()

    def _after_fork(self) -> None:
        # The parent's thread and listener are not this process's: forget them, and close
        # the duplicates inherited with the offers, which only the parent may hand out.
        for _, close in self._offers.values():
            close()
        self._offers.clear()
        self._lock = threading.Lock()
        if self._listener is not None:
            self._listener.close()
        self._listener = None
        self._address = None
        self._thread = None

    def _start(self) -> None:
        from .connection import Listener

        assert self._listener is None, "the resource sharer is already listening"
        util.debug("starting listener and thread for sending handles")
        self._listener = Listener(authkey=process.current_process().authkey, backlog=128)
        self._address = self._listener.address
        thread = threading.Thread(target=self._serve, name="ferroproc-resource-sharer")
        thread.daemon = True
        thread.start()
        self._thread = thread

    def _serve(self) -> None:
        # Signals are the main thread's business.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            try:
                with self._listener.accept() as conn:
                    request = conn.recv()
                    if request is None:
                        break
                    key, destination_pid = request
                    send, close = self._offers.pop(key)
                    try:
                        send(conn, destination_pid)
                    finally:
                        close()
            except BaseException:
                if not util.is_exiting():
                    sys.excepthook(*sys.exc_info())


_resource_sharer = _ResourceSharer()
stop = _resource_sharer.stop
