"""Connections between threads: the stdlib's ``multiprocessing.dummy.connection`` API.

The counterpart of :mod:`ferroproc.connection` for :mod:`ferroproc.dummy`, where the
"processes" are threads of one interpreter. A :class:`Connection` is a pair of
``queue.Queue`` objects, one per direction, so nothing is pickled: the receiver gets the
very object that was sent. A :class:`Listener`'s address is the queue that :func:`Client`
leaves its half of a new pair in, for :meth:`Listener.accept` to pick up.

Nothing here crosses a process boundary, so nothing here goes through ferroproc's engine.

::

    Pipe():      Connection(a, b) --put--> b      a <--put-- Connection(b, a)
    Client(l):   l.address.put((out, in))  -->  l.accept() == Connection(out, in)
"""

from __future__ import annotations

import queue

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = ["Client", "Listener", "Pipe"]

#: The address families a :class:`Listener` accepts: only the default, ``None``.
families: list[str | None] = [None]


class Connection:
    """One end of a two-way channel between threads, with the ``Connection`` API.

    ``send`` puts an object on the outgoing queue and ``recv`` takes one from the incoming
    queue, blocking until there is one. Objects are passed as they are, not copied.
    """

    def __init__(self, _in: queue.Queue[Any], _out: queue.Queue[Any]) -> None:
        self._in = _in
        self._out = _out

    def send(self, obj: object) -> None:
        """Send ``obj`` to the other end."""
        self._out.put(obj)

    def recv(self) -> Any:
        """Return the next object sent from the other end, waiting for one if need be."""
        return self._in.get()

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send ``buf`` (or ``size`` bytes of it from ``offset``) to the other end.

        The whole buffer is sent as it is, as the stdlib's dummy connection does; a slice
        is copied into a ``bytes`` object.
        """
        if offset == 0 and size is None:
            self._out.put(buf)
            return
        view = memoryview(buf).cast("B")
        if offset < 0:
            raise ValueError("offset is negative")
        if offset > len(view):
            raise ValueError("buffer length < offset")
        if size is None:
            size = len(view) - offset
        if size < 0:
            raise ValueError("size is negative")
        if offset + size > len(view):
            raise ValueError("buffer length < offset + size")
        self._out.put(bytes(view[offset : offset + size]))

    def recv_bytes(self) -> Any:
        """Return the next message sent from the other end, waiting for one if need be."""
        return self._in.get()

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether there is something to receive, waiting up to ``timeout`` seconds for it.

        ``timeout`` of zero (the default) or less does not wait; ``None`` waits as long as
        it takes.
        """
        if self._in.qsize() > 0:
            return True
        if timeout is not None and timeout <= 0:
            return False
        incoming = self._in
        # `not_empty` shares the queue's mutex, so read the size without taking it again.
        with incoming.not_empty:
            return incoming.not_empty.wait_for(lambda: incoming._qsize() > 0, timeout)

    def close(self) -> None:
        """Do nothing: there is no resource to release (the stdlib's behaviour)."""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: object, exc_value: object, exc_tb: object) -> None:
        self.close()


class Listener:
    """Accepts connections from :func:`Client` calls in other threads.

    ``address`` and ``family`` are ignored (pass the listener's :attr:`address` to
    :func:`Client`); ``backlog`` is how many clients may wait for :meth:`accept` before
    :func:`Client` blocks (zero or less: no bound).
    """

    def __init__(self, address: object = None, family: str | None = None, backlog: int = 1) -> None:
        self._backlog_queue: queue.Queue[tuple[queue.Queue[Any], queue.Queue[Any]]] | None = (
            queue.Queue(backlog)
        )

    def accept(self) -> Connection:
        """Wait for a :func:`Client` to connect and return this side of the connection."""
        backlog = self._backlog_queue
        if backlog is None:
            raise OSError("listener is closed")
        return Connection(*backlog.get())

    def close(self) -> None:
        """Stop accepting connections; the address becomes ``None``."""
        self._backlog_queue = None

    @property
    def address(self) -> queue.Queue[tuple[queue.Queue[Any], queue.Queue[Any]]] | None:
        """What to pass to :func:`Client`: the queue that pending connections wait in."""
        return self._backlog_queue

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, exc_type: object, exc_value: object, exc_tb: object) -> None:
        self.close()


def Client(address: queue.Queue[tuple[queue.Queue[Any], queue.Queue[Any]]]) -> Connection:
    """Connect to the :class:`Listener` whose :attr:`~Listener.address` is ``address``.

    Blocks while the listener's backlog is full.
    """
    to_client: queue.Queue[Any] = queue.Queue()
    to_listener: queue.Queue[Any] = queue.Queue()
    address.put((to_listener, to_client))
    return Connection(to_client, to_listener)


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Return the two ends of a new channel between threads.

    Both ends can send and receive whatever ``duplex`` says, as in the stdlib's dummy
    connection.
    """
    forward: queue.Queue[Any] = queue.Queue()
    backward: queue.Queue[Any] = queue.Queue()
    return Connection(forward, backward), Connection(backward, forward)
