"""Process-shared queues: the stdlib's ``multiprocessing.queues``, on shared memory.

::

    Queue / JoinableQueue / SimpleQueue ──▶ _core.Channel ──▶ a ring of messages in an
                                                             anonymous memfd segment,
                                                             futex waits, robust locks

A message is written straight into the ring by the process that puts it: there is no
feeder thread and no pipe. So ``put`` never waits behind a background thread, an object
that cannot be pickled fails in ``put`` itself, and what a process put is in shared
memory the moment ``put`` returns, even if the process exits (or is killed) right after.
A process killed in the middle of a ``put`` or ``get`` never wedges the queue: the next
process takes its lock over, the half-written message is dropped, and the loss is counted
in :attr:`Queue.lost_messages`.

``None``, ``bool``, ``int`` (64-bit), ``float``, ``str`` and ``bytes`` travel without
pickling. Other objects are pickled with protocol 5; their large buffers (NumPy arrays,
``PickleBuffer``) are copied into the ring beside the pickle rather than into it.

Beyond the stdlib: :meth:`Queue.put_many` and :meth:`Queue.get_many` move many messages
for one lock round trip, and ``capacity=`` sizes the ring (8 MiB of address space by
default, backed only where messages have been). A message larger than half the ring goes
into an anonymous file of its own (a memfd), whose descriptor travels over a socket the
queue's processes share: no size is too large, and ``put`` never waits for a reader to
make room for it. Like the stdlib's, ``put`` on an unbounded queue never waits: should
the ring's bytes all be in use (megabytes nobody has read), the message goes to a
background thread of the process (the stdlib's feeder thread, engaged only then), which
the process waits for at exit unless ``cancel_join_thread`` was called. With ``maxsize``,
``put`` waits while the queue holds that many messages, as the stdlib's does.
"""

from __future__ import annotations

import os
import pickle
import threading
import types
from queue import Empty, Full

from . import _core, context, reduction, util

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["Empty", "Full", "JoinableQueue", "Queue", "SimpleQueue"]

#: Buffers at least this large are written beside the pickle instead of inside it.
OUT_OF_BAND_THRESHOLD = 64 * 1024


class _Pickling:
    """A thread's reusable pickler. Building a ``pickle.Pickler`` costs more than pickling
    a small object with it (measured here: 1.7 µs against 0.5 µs for a short tuple), and
    the pickler writes each finished pickle to its "file" as one ``bytes`` object, so a
    list's ``append`` as the file collects it without a copy."""

    __slots__ = ("busy", "chunks", "large", "pickler", "table")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.large: list[pickle.PickleBuffer] = []
        sink = types.SimpleNamespace(write=self.chunks.append)
        self.pickler = reduction.ForkingPickler(sink, 5, buffer_callback=self.keep_in_band)
        self.table = self.pickler.dispatch_table
        self.busy = False

    def keep_in_band(self, buffer: pickle.PickleBuffer) -> bool:
        """``buffer_callback``: large contiguous buffers travel beside the pickle."""
        try:
            size = buffer.raw().nbytes
        except BufferError:  # not contiguous: only an in-band copy can carry it
            return True
        if size < OUT_OF_BAND_THRESHOLD:
            return True
        self.large.append(buffer)
        return False

    def dumps(self, obj: object) -> tuple[bytes, list[pickle.PickleBuffer]]:
        pickler, chunks = self.pickler, self.chunks
        table = reduction.ForkingPickler._current_table()
        if table is not self.table:
            # Reducers were registered since the last use.
            pickler.dispatch_table = self.table = table
        self.busy = True
        try:
            pickler.dump(obj)
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            large, self.large = self.large, []
            return data, large
        except BaseException:
            # A pickler interrupted half-way is in no state to be reused.
            _pickling.pop(threading.get_ident(), None)
            raise
        finally:
            chunks.clear()
            pickler.clear_memo()
            self.busy = False


#: Each thread's reusable pickler, by thread id.
_pickling: dict[int, _Pickling] = {}


def _dumps(obj: object) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Pickle ``obj`` for a queue: the pickle and its large out-of-band buffers."""
    ident = threading.get_ident()
    state = _pickling.get(ident)
    if state is None:
        state = _pickling[ident] = _Pickling()
    elif state.busy:
        # Re-entered (an object's reducer put something on a queue): a pickler of its own.
        return _Pickling().dumps(obj)
    return state.dumps(obj)


def _loads(data: Any, buffers: Iterable[Any]) -> Any:
    return pickle.loads(data, buffers=buffers)


class _ChannelRef:
    """A queue's channel on its way to a child being started."""

    __slots__ = ("fds", "inode", "maxsize", "track_tasks")

    def __init__(self, channel: _core.Channel) -> None:
        self.inode = os.fstat(channel.fd).st_ino
        self.fds = tuple(reduction.DupFd(fd) for fd in (channel.fd, *channel.spill_fds))
        self.maxsize = channel.maxsize
        self.track_tasks = channel.track_tasks

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.fds, self.inode, self.maxsize, self.track_tasks)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.fds, self.inode, self.maxsize, self.track_tasks = state


_attach_lock = threading.Lock()
#: Channels attached in this process, by the inode of their segment: a queue passed to a
#: child twice (or inside two objects) maps its segment once.
_attached: dict[int, _core.Channel] = {}
_closed_passed_fds: set[int] = set()


def _new_channel(maxsize: int, track_tasks: bool, capacity: int | None) -> _core.Channel:
    if capacity is None:
        channel = _core.Channel(maxsize=max(maxsize, 0), track_tasks=track_tasks)
    else:
        channel = _core.Channel(capacity, max(maxsize, 0), track_tasks)
    channel.set_codec(_dumps, _loads)
    return channel


def _attach_channel(ref: _ChannelRef) -> _core.Channel:
    with _attach_lock:
        fds = [fd.detach() for fd in ref.fds]
        channel = _attached.get(ref.inode)
        try:
            if channel is None:
                # The channel keeps duplicates of the descriptors; ours can go.
                segment, spill_sender, spill_receiver = fds
                channel = _core.Channel.attach(
                    segment, spill_sender, spill_receiver, ref.maxsize, ref.track_tasks
                )
                channel.set_codec(_dumps, _loads)
                _attached[ref.inode] = channel
        finally:
            for fd in fds:
                if fd not in _closed_passed_fds:
                    _closed_passed_fds.add(fd)
                    os.close(fd)
        return channel


def _flush_unless_cancelled(channel: _core.Channel, cancelled: list[bool]) -> None:
    if not cancelled[0]:
        channel.flush()


class Queue:
    """A FIFO queue shared between processes (``multiprocessing.Queue``).

    ``maxsize`` bounds the number of messages (``<= 0``: no bound); ``capacity`` is the
    ring's size in bytes (a multiple of 16, at least 1024).
    """

    def __init__(self, maxsize: int = 0, *, ctx: Any, capacity: int | None = None) -> None:
        self._maxsize = maxsize if maxsize > 0 else _core.SEM_VALUE_MAX
        self._channel = _new_channel(maxsize, self._tracks_tasks(), capacity)
        self._ignore_epipe = False
        self._reset()

    @staticmethod
    def _tracks_tasks() -> bool:
        return False

    def _reset(self) -> None:
        self._closed = False
        self._joincancelled = False
        # Shared with the exit-time flush, which must not keep the queue alive.
        self._cancel: list[bool] = [False]
        self._flusher: util.Finalize | None = None

    def _overflowed(self) -> None:
        """Messages went to this process's overflow thread (the ring was out of bytes):
        as the stdlib waits for its feeder thread, wait for it at exit unless
        ``cancel_join_thread`` was called."""
        if self._flusher is None or not self._flusher.still_active():
            self._flusher = util.Finalize(
                self, _flush_unless_cancelled, args=(self._channel, self._cancel), exitpriority=-5
            )

    def __getstate__(self) -> tuple[Any, ...]:
        context.assert_spawning(self)
        return (self._ignore_epipe, self._maxsize, _ChannelRef(self._channel))

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._ignore_epipe, self._maxsize, ref = state
        self._channel = _attach_channel(ref)
        self._reset()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"size={self._channel.qsize()}"
        return f"<{type(self).__name__} object at {id(self):#x} maxsize={self._maxsize} {state}>"

    def _check_closed(self) -> None:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj: object, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` on the queue; raise ``queue.Full`` if no room came by ``timeout``.

        The object is pickled here, so an unpicklable one raises here and leaves the queue
        as it was (the stdlib's feeder thread prints the error and drops the object). A
        subclass that overrides the stdlib's hook ``_on_queue_feeder_error(e, obj)`` gets
        it called instead, as it would with the stdlib.
        """
        if self._closed:
            self._check_closed()
        try:
            overflowed = self._channel.put(obj, block, timeout)
        except Full:
            raise
        except Exception as exc:
            if type(self)._on_queue_feeder_error is Queue._on_queue_feeder_error:
                raise
            self._on_queue_feeder_error(exc, obj)
            return
        if overflowed:
            self._overflowed()

    @staticmethod
    def _on_queue_feeder_error(e: BaseException, obj: object) -> None:
        """The stdlib's hook for an object its feeder thread could not send. ferroproc
        calls an override of it instead of raising from ``put``."""
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest message; raise ``queue.Empty`` if none came."""
        if self._closed:
            self._check_closed()
        return self._channel.get(block, timeout)

    def put_many(
        self, objs: Iterable[object], block: bool = True, timeout: float | None = None
    ) -> None:
        """Put every object of ``objs``, in order, taking the queue's lock once per batch.

        ferroproc's extension. If ``timeout`` passes before all are put, ``queue.Full`` is
        raised with the number that were put as its argument; the rest were not.
        """
        self._check_closed()
        if self._channel.put_many(objs, block, timeout):
            self._overflowed()

    def get_many(
        self,
        block: bool = True,
        timeout: float | None = None,
        max_messages: int | None = None,
    ) -> list[Any]:
        """Return the oldest messages: at least one (waiting like ``get``), then every one
        already there, up to ``max_messages``.

        ferroproc's extension; raises ``queue.Empty`` like ``get``.
        """
        self._check_closed()
        return self._channel.get_many(block, timeout, max_messages)

    def qsize(self) -> int:
        """The approximate number of messages in the queue."""
        return self._channel.qsize()

    def empty(self) -> bool:
        """Whether the queue is empty (a snapshot)."""
        return self._channel.empty()

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` messages (a snapshot)."""
        return self._channel.maxsize > 0 and self._channel.qsize() >= self._channel.maxsize

    def get_nowait(self) -> Any:
        """``get(False)``."""
        return self.get(False)

    def put_nowait(self, obj: object) -> None:
        """``put(obj, False)``."""
        return self.put(obj, False)

    @property
    def lost_messages(self) -> int:
        """Messages lost because a process was killed in the middle of putting or getting
        them (or because another process corrupted the queue's memory). ferroproc's
        extension: such losses are silent hangs with the stdlib."""
        return self._channel.lost

    def close(self) -> None:
        """Say that this process will put no more on the queue; later calls to ``put``
        and ``get`` on this handle raise ``ValueError``.

        What was put is in shared memory, or on its way there (see ``join_thread``).
        """
        self._closed = True

    def join_thread(self) -> None:
        """After ``close()``, wait until everything this process put is in the queue.

        ``put`` writes into shared memory itself; only while the ring's bytes are all in
        use does it leave messages to a background thread, which this waits for (at once
        if it has nothing left).
        """
        util.debug("Queue.join_thread()")
        assert self._closed, f"Queue {self!r} not closed"
        self._channel.flush()

    def cancel_join_thread(self) -> None:
        """Do not wait at exit for messages still in the background thread (see
        ``join_thread``); they may then be lost. Messages already in the ring never are."""
        util.debug("Queue.cancel_join_thread()")
        self._joincancelled = True
        self._cancel[0] = True


class JoinableQueue(Queue):
    """A :class:`Queue` that counts unfinished tasks (``multiprocessing.JoinableQueue``)."""

    @staticmethod
    def _tracks_tasks() -> bool:
        return True

    def task_done(self) -> None:
        """Mark one message taken with ``get`` as processed; ``ValueError`` if more are
        marked than were put."""
        self._channel.task_done()

    def join(self, timeout: float | None = None) -> bool:
        """Block until every message put has been marked done with ``task_done``.

        ``timeout`` is ferroproc's extension; the result says whether all were done.
        """
        return self._channel.join(timeout)


class SimpleQueue:
    """A simpler queue with ``put``, ``get``, ``empty`` and ``close``
    (``multiprocessing.SimpleQueue``)."""

    def __init__(self, *, ctx: Any, capacity: int | None = None) -> None:
        self._channel: _core.Channel | None = _new_channel(0, False, capacity)
        self._flusher: util.Finalize | None = None

    def __getstate__(self) -> tuple[Any, ...]:
        context.assert_spawning(self)
        return (_ChannelRef(self._live()),)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (ref,) = state
        self._channel = _attach_channel(ref)
        self._flusher = None

    def _live(self) -> _core.Channel:
        if self._channel is None:
            raise OSError("handle is closed")
        return self._channel

    def close(self) -> None:
        """Release this handle; later calls on it raise ``OSError``. Idempotent."""
        self._channel = None

    def empty(self) -> bool:
        """Whether the queue is empty (a snapshot)."""
        return self._live().empty()

    def get(self) -> Any:
        """Remove and return the oldest message, waiting for one."""
        return self._live().get()

    def put(self, obj: object) -> None:
        """Put ``obj`` on the queue."""
        channel = self._live()
        if channel.put(obj) and self._flusher is None:
            # The ring was out of bytes: see Queue.join_thread.
            self._flusher = util.Finalize(self, channel.flush, exitpriority=-5)

    __class_getitem__: Any = classmethod(types.GenericAlias)
