"""Shared-memory arenas for small shared objects: the stdlib's ``multiprocessing.heap`` role.

Locks, semaphores, events, conditions, barriers and small ``Value``/``Array`` buffers each
take a block of an *arena*: an anonymous shared segment (memfd) whose allocator lives in
the segment itself (``_core.Arena``), so memory is freed by the kernel when the last
process lets go and nothing can leak into ``/dev/shm``.

Forked children inherit every arena mapping. A spawned or fork-server child receives an
arena's descriptor when an object in it is pickled for the child (``reduce_arena``), and
maps each arena once however many objects reference it (``rebuild_arena``).

``BufferWrapper`` is the memory of a ``sharedctypes`` object (the stdlib's name)::

    size <= RawBlock.MAX_SIZE:  _core.RawBlock (a block of an arena) ─┐
    larger:                     _core.SharedBuffer (a memfd of its own)├─▶ mmap.mmap of the
                                                                       ┘   fd, cached; ctypes
                                                                           objects are made
                                                                           with from_buffer

The bytes are reached through a Python ``mmap`` of the segment's descriptor (one per
arena, cached), so Python's own buffer protocol keeps every ctypes object's memory mapped
for as long as the object lives.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
import weakref

from . import _core, reduction

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Callable, TypeVar

    T = TypeVar("T")

__all__ = ["Arena", "BufferWrapper", "arena_map", "place", "rebuild_arena", "reduce_arena"]

Arena = _core.Arena

# Large enough for thousands of locks, small enough to cost nothing until touched (the
# kernel only backs the pages that are written).
ARENA_CAPACITY = 4 << 20

_lock = threading.Lock()
_current: _core.Arena | None = None
_by_inode: dict[int, _core.Arena] = {}
_closed_passed_fds: set[int] = set()
# id(arena) -> (arena, a mapping of its whole file). Arenas live as long as the process
# (`_by_inode` holds them), and keeping the arena here too makes the id a stable key.
_arena_maps: dict[int, tuple[_core.Arena, mmap.mmap]] = {}

# Objects alive at a fork may be used by the child: their blocks must outlive the parent's
# handles, so the core counts forks (see `Placed` in the bindings).
os.register_at_fork(before=_core.note_fork)


def place(cls: Callable[..., T], *args: object) -> T:
    """``cls(arena, *args)`` in this process's current arena, or a fresh one if it is full."""
    global _current
    with _lock:
        if _current is None:
            _current = _new_arena_locked(ARENA_CAPACITY)
        arena = _current
    try:
        return cls(arena, *args)
    except MemoryError:
        with _lock:
            if _current is arena:
                _current = _new_arena_locked(ARENA_CAPACITY)
            arena = _current
        return cls(arena, *args)


def _new_arena_locked(capacity: int) -> _core.Arena:
    arena = _core.Arena.create(capacity)
    _by_inode[os.fstat(arena.fd).st_ino] = arena
    return arena


class _ArenaRef:
    """How an arena (or a large buffer's segment) travels to a child being started: its
    identity and its descriptor."""

    __slots__ = ("fd", "inode")

    def __init__(self, inode: int, fd: reduction._DupFd) -> None:
        self.inode = inode
        self.fd = fd

    def __reduce__(self) -> tuple[object, ...]:
        return _ArenaRef, (self.inode, self.fd)


def reduce_arena(arena: _core.Arena) -> _ArenaRef:
    """The picklable form of ``arena`` for a child being started (``assert_spawning``)."""
    return _ArenaRef(os.fstat(arena.fd).st_ino, reduction.DupFd(arena.fd))


def rebuild_arena(ref: _ArenaRef) -> _core.Arena:
    """The arena ``ref`` names, mapped once per process."""
    with _lock:
        fd = ref.fd.detach()
        arena = _by_inode.get(ref.inode)
        try:
            if arena is None:
                # The arena keeps a duplicate of the descriptor; ours can go.
                arena = _core.Arena.attach(fd)
                _by_inode[ref.inode] = arena
        finally:
            # The same descriptor may arrive for many objects of one arena: close it once.
            _close_passed_fd_locked(fd)
        return arena


def _close_passed_fd_locked(fd: int) -> None:
    """Closes a descriptor received from the parent, the first time it is seen."""
    if fd not in _closed_passed_fds:
        _closed_passed_fds.add(fd)
        os.close(fd)


def arena_map(arena: _core.Arena) -> mmap.mmap:
    """A mapping of all of ``arena``'s file, made once per arena and process.

    A block at ``offset`` starts at ``arena.data_offset + offset`` of it.
    """
    with _lock:
        entry = _arena_maps.get(id(arena))
        if entry is None:
            entry = (arena, mmap.mmap(arena.fd, arena.data_offset + arena.size))
            _arena_maps[id(arena)] = entry
        return entry[1]


# --- memory for sharedctypes ---------------------------------------------------------


class _Segment:
    """A ``_core.SharedBuffer`` and this process's mapping of it."""

    __slots__ = ("__weakref__", "buffer", "inode", "map")

    def __init__(self, buffer: _core.SharedBuffer) -> None:
        self.buffer = buffer
        self.inode = os.fstat(buffer.fd).st_ino
        self.map = mmap.mmap(buffer.fd, buffer.size)


# inode -> the segment of a large buffer received from the parent, so that a segment that
# arrives several times is mapped, and its descriptor closed, once.
_received_segments: weakref.WeakValueDictionary[int, _Segment] = weakref.WeakValueDictionary()


class BufferWrapper:
    """``size`` zero-filled bytes of shared memory: the memory of a ``sharedctypes`` object.

    Up to ``_core.RawBlock.MAX_SIZE`` bytes take a block of an arena; larger buffers get
    a segment of their own (freed by the kernel once no process uses it). Pickling is for
    a child being started only; the child sees the same memory.
    """

    __slots__ = ("_block", "_map", "_segment", "_size", "_start")

    _block: _core.RawBlock | None
    _segment: _Segment | None
    _map: mmap.mmap
    _start: int
    _size: int

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"Size {size:n} out of range")
        if sys.maxsize <= size:
            raise OverflowError(f"Size {size:n} too large")
        if size <= _core.RawBlock.MAX_SIZE:
            self._set_block(place(_core.RawBlock, size))
        else:
            self._set_segment(_Segment(_core.SharedBuffer.create(size)), size)

    def _set_block(self, block: _core.RawBlock) -> None:
        arena = block.arena
        self._block = block
        self._segment = None
        self._map = arena_map(arena)
        self._start = arena.data_offset + block.offset
        self._size = block.size

    def _set_segment(self, segment: _Segment, size: int) -> None:
        if size > segment.buffer.size:
            raise ValueError(f"a shared buffer of {segment.buffer.size} bytes cannot hold {size}")
        self._block = None
        self._segment = segment
        self._map = segment.map
        self._start = 0
        self._size = size

    @property
    def size(self) -> int:
        """How many bytes the buffer holds."""
        return self._size

    def create_memoryview(self) -> memoryview:
        """A writable view of the buffer's bytes (keeps this process's mapping alive)."""
        return memoryview(self._map)[self._start : self._start + self._size]

    def __reduce__(self) -> tuple[object, ...]:
        from .context import assert_spawning

        assert_spawning(self)
        if self._block is not None:
            block = self._block
            ref = reduce_arena(block.arena)
            # From here on a child may use the block: it must outlive this handle.
            block._mark_shared()
            return _rebuild_block, (ref, block.offset, block.size)
        assert self._segment is not None
        segment = self._segment
        ref = _ArenaRef(segment.inode, reduction.DupFd(segment.buffer.fd))
        return _rebuild_segment, (ref, self._size)

    def __repr__(self) -> str:
        where = "arena block" if self._block is not None else "segment"
        return f"<{type(self).__name__} size={self._size} ({where})>"


def _rebuild_block(ref: _ArenaRef, offset: int, size: int) -> BufferWrapper:
    block = _core.RawBlock.rebuild(rebuild_arena(ref), offset, size)
    wrapper = BufferWrapper.__new__(BufferWrapper)
    wrapper._set_block(block)
    return wrapper


def _rebuild_segment(ref: _ArenaRef, size: int) -> BufferWrapper:
    with _lock:
        fd = ref.fd.detach()
        try:
            segment = _received_segments.get(ref.inode)
            if segment is None:
                if fd in _closed_passed_fds:
                    # Mapped before, dropped since: the descriptor is gone (or reused).
                    raise RuntimeError("a shared buffer passed twice was released in between")
                # The buffer and the mapping keep duplicates of the descriptor.
                segment = _Segment(_core.SharedBuffer.attach(fd))
                _received_segments[ref.inode] = segment
        finally:
            _close_passed_fd_locked(fd)
    wrapper = BufferWrapper.__new__(BufferWrapper)
    wrapper._set_segment(segment, size)
    return wrapper
