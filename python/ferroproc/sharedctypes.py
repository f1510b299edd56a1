"""ctypes objects in shared memory: the stdlib's ``multiprocessing.sharedctypes``.

::

    RawValue / RawArray ──▶ heap.BufferWrapper ──▶ _core.RawBlock (an arena block)
          │                 (the bytes)            or _core.SharedBuffer (large arrays)
          ▼
    ctype.from_buffer(wrapper.create_memoryview())   the ctypes object over shared bytes
          │
    Value / Array / synchronized ──▶ Synchronized* wrapper: the object and a lock

A ctypes object made here pickles only while a child process is being started (like the
stdlib's): the child receives the segment's descriptor and makes a ctypes object over
the same bytes, so writes on either side are seen by the other.
"""

from __future__ import annotations

import ctypes
import weakref

from . import context, heap, reduction

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["Array", "RawArray", "RawValue", "Value", "copy", "synchronized"]

typecode_to_type: dict[str, type[Any]] = {
    "c": ctypes.c_char,
    "u": ctypes.c_wchar,
    "b": ctypes.c_byte,
    "B": ctypes.c_ubyte,
    "h": ctypes.c_short,
    "H": ctypes.c_ushort,
    "i": ctypes.c_int,
    "I": ctypes.c_uint,
    "l": ctypes.c_long,
    "L": ctypes.c_ulong,
    "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float,
    "d": ctypes.c_double,
}


def _ctype_of(typecode_or_type: Any) -> Any:
    """The ctypes type a typecode names, or the argument itself if it is not a typecode."""
    return typecode_to_type.get(typecode_or_type, typecode_or_type)


def _new_value(type_: Any) -> Any:
    """A zero-filled ``type_`` in a fresh shared buffer."""
    wrapper = heap.BufferWrapper(ctypes.sizeof(type_))
    return rebuild_ctype(type_, wrapper, None)


def RawValue(typecode_or_type: Any, *args: Any) -> Any:
    """A ctypes object in shared memory, initialised with ``args`` (zeroed without)."""
    obj = _new_value(_ctype_of(typecode_or_type))
    ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type: Any, size_or_initializer: int | Iterable[Any]) -> Any:
    """A ctypes array in shared memory: ``size_or_initializer`` zeros, or its items."""
    type_ = _ctype_of(typecode_or_type)
    if isinstance(size_or_initializer, int):
        obj = _new_value(type_ * size_or_initializer)
        ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
        return obj
    items = list(size_or_initializer)
    obj = _new_value(type_ * len(items))
    obj.__init__(*items)
    return obj


def _lock_for(lock: Any, ctx: Any) -> Any:
    """The lock ``Value``/``Array`` use for their ``lock`` argument."""
    # Equality too, as in the stdlib: `lock=1` also asks for a new lock.
    if lock in (True, None):
        ctx = ctx or context._default_context.get_context()
        return ctx.RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire'")
    return lock


def Value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Any = None) -> Any:
    """A ctypes object in shared memory, wrapped with a lock unless ``lock`` is false.

    ``lock=True`` (the default) makes a new recursive lock; a lock object is used as is.
    """
    obj = RawValue(typecode_or_type, *args)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(lock, ctx), ctx=ctx)


def Array(
    typecode_or_type: Any,
    size_or_initializer: int | Iterable[Any],
    *,
    lock: Any = True,
    ctx: Any = None,
) -> Any:
    """A ctypes array in shared memory, wrapped with a lock unless ``lock`` is false."""
    obj = RawArray(typecode_or_type, size_or_initializer)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(lock, ctx), ctx=ctx)


def copy(obj: Any) -> Any:
    """A new shared ctypes object holding a copy of ``obj``'s bytes."""
    new_obj = _new_value(type(obj))
    ctypes.pointer(new_obj)[0] = obj
    return new_obj


def synchronized(obj: Any, lock: Any = None, ctx: Any = None) -> SynchronizedBase:
    """Wrap the ctypes object ``obj`` so that its accesses take ``lock`` (a new RLock if None)."""
    if isinstance(obj, SynchronizedBase):
        raise AssertionError("object already synchronized")
    ctx = ctx or context._default_context.get_context()
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock, ctx)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock, ctx)
        return SynchronizedArray(obj, lock, ctx)
    cls = type(obj)
    try:
        scls = _class_cache[cls]
    except KeyError:
        names = [field[0] for field in cls._fields_]
        namespace: dict[str, Any] = {name: _locked_property(name) for name in names}
        scls = type("Synchronized" + cls.__name__, (SynchronizedBase,), namespace)
        _class_cache[cls] = scls
    return scls(obj, lock, ctx)


# --- pickling: for children being started only ----------------------------------------


def reduce_ctype(obj: Any) -> tuple[Any, ...]:
    """The pickled form of a shared ctypes object: its type and its buffer."""
    context.assert_spawning(obj)
    wrapper = obj._wrapper
    if isinstance(obj, ctypes.Array):
        return rebuild_ctype, (obj._type_, wrapper, obj._length_)
    return rebuild_ctype, (type(obj), wrapper, None)


def rebuild_ctype(type_: Any, wrapper: heap.BufferWrapper, length: int | None) -> Any:
    """A ``type_`` (an array of ``length`` of them if given) over ``wrapper``'s bytes."""
    if length is not None:
        type_ = type_ * length
    reduction.ForkingPickler.register(type_, reduce_ctype)
    obj = type_.from_buffer(wrapper.create_memoryview())
    # The object must keep its memory: the wrapper owns the block or segment.
    obj._wrapper = wrapper
    return obj


# --- synchronized wrappers ------------------------------------------------------------


def _locked_property(name: str) -> property:
    """A property that reads and writes ``self._obj.<name>`` holding the wrapper's lock."""

    # acquire/release are the lock's own (core) methods, bound in __init__: going through
    # `with self` would add two Python frames to every read and write.
    def fget(self: SynchronizedBase) -> Any:
        self._lock_blocking()
        try:
            return getattr(self._obj, name)
        finally:
            self.release()

    def fset(self: SynchronizedBase, value: Any) -> None:
        self._lock_blocking()
        try:
            setattr(self._obj, name, value)
        finally:
            self.release()

    return property(fget, fset, doc=f"``{name}`` of the wrapped object, read under the lock.")


_class_cache: weakref.WeakKeyDictionary[type, type[SynchronizedBase]] = weakref.WeakKeyDictionary()


class SynchronizedBase:
    """A ctypes object together with the lock that guards it."""

    def __init__(self, obj: Any, lock: Any = None, ctx: Any = None) -> None:
        self._obj = obj
        if lock:
            self._lock = lock
        else:
            ctx = ctx or context._default_context.get_context()
            self._lock = ctx.RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        # Value and item access take the lock through a method without arguments when the
        # lock is one of ours (the fastest call an abi3 extension offers), else `acquire`.
        semlock = getattr(self._lock, "_semlock", None)
        self._lock_blocking = semlock.__enter__ if semlock is not None else self._lock.acquire

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *args: object) -> Any:
        return self._lock.__exit__(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        context.assert_spawning(self)
        return synchronized, (self._obj, self._lock)

    def get_obj(self) -> Any:
        """The wrapped ctypes object (accessing it directly takes no lock)."""
        return self._obj

    def get_lock(self) -> Any:
        """The lock that guards the object."""
        return self._lock

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapper for {self._obj}>"


class Synchronized(SynchronizedBase):
    """A shared ctypes scalar with a lock; ``value`` reads and writes under it."""

    value = _locked_property("value")


class SynchronizedArray(SynchronizedBase):
    """A shared ctypes array with a lock; indexing and slicing take it."""

    def __len__(self) -> int:
        return len(self._obj)

    def __getitem__(self, i: Any) -> Any:
        self._lock_blocking()
        try:
            return self._obj[i]
        finally:
            self.release()

    def __setitem__(self, i: Any, value: Any) -> None:
        self._lock_blocking()
        try:
            self._obj[i] = value
        finally:
            self.release()


class SynchronizedString(SynchronizedArray):
    """A shared ``c_char`` array with a lock; ``value`` and ``raw`` take it."""

    value = _locked_property("value")
    raw = _locked_property("raw")
