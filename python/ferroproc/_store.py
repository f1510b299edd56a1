"""The containers of ``SyncManager`` that live in shared memory: dict, list, Namespace, Value.

Each is a ``ferroproc._core.Store`` (a map or a sequence in a memfd, under one robust
lock). The manager's server process creates it and holds its descriptor while the
container is referred to; a proxy in any process of the same user on the same machine opens that
descriptor through ``/proc/<server pid>/fd/<n>`` once, and from then on every operation is
a lock, a probe and a copy in its own process: no message to the server. A proxy that cannot
open it (a client of a remote manager on another machine) sends its calls to the server,
where the same class below serves them from the server's own mapping.

Where this differs from the stdlib, on purpose:
- Any object whose proxy was written into a container (``d["inner"] = manager.list()``)
  lives until its manager shuts down, even once no proxy refers to it: in the container
  the proxy is only bytes, which the server cannot count as a reference, so writing it
  pins the object (``Server.pin``). Other containers are freed, as in the stdlib, when
  their last proxy goes.
- Keys that are not ``None``, numbers, ``str``, ``bytes`` or tuples of these compare by
  their pickles (equal objects whose pickles differ are different keys).
- Values are stored as copies, as with the stdlib: mutating an object read from a container
  does not change the container.
"""

from __future__ import annotations

import contextlib
import io
import operator
import os
import pickle
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, SupportsIndex

from . import _core, _proxies, process
from ._manager_server import RemoteError
from ._proxies import BaseProxy
from .reduction import ForkingPickler

__all__ = [
    "DictProxy",
    "ListProxy",
    "NamespaceProxy",
    "SharedDict",
    "SharedList",
    "SharedNamespace",
    "SharedValue",
    "ValueProxy",
]

#: Address space each container reserves (its largest value is about half of it); memory
#: is taken only as it fills.
CAPACITY = 4 << 30

Locator = tuple[int, int, int]


class _StorePickler(ForkingPickler):
    """Pickles values into a store. A proxy pickled here pins its referent in the
    manager's server: the server cannot count bytes in a store as a reference, and without
    the pin it would free the object once the last live proxy went (the stdlib's server
    holds a proxy object in the container instead)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseProxy) and not getattr(obj, "_pinned_in_server", False):
            _pin(obj)
        return NotImplemented


def _own_server(address: Any) -> Any:
    """The manager server this process runs, if it is the one at ``address``."""
    server = getattr(process.current_process(), "_manager_server", None)
    if server is not None and server.address == address:
        return server
    return None


def _pin(proxy: BaseProxy) -> None:
    from ._manager_server import dispatch

    server = _own_server(proxy._token.address)
    if server is not None:
        # Inside the server (a container made or changed by a remote call), perhaps
        # while it holds its mutex: no request to itself.
        server.pinned.add(proxy._id)
    else:
        with proxy._Client(proxy._token.address, authkey=proxy._authkey) as connection:
            dispatch(connection, None, "pin", (proxy._id,))
    object.__setattr__(proxy, "_pinned_in_server", True)


def _pickle(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _StorePickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


class _Pickling:
    """How a store pickles what it has no native form for."""

    dumps = staticmethod(_pickle)

    @staticmethod
    def dumps_with_buffers(obj: Any) -> tuple[bytes, list[Any]]:
        return _pickle(obj), []

    @staticmethod
    def loads(data: Any, buffers: Any = ()) -> Any:
        return pickle.loads(data, buffers=buffers)


# Every store this process has open, by identity: the server's own, and those proxies
# attached; each stays mapped while something here uses it. Inherited by forked children
# along with the mappings.
_open: weakref.WeakValueDictionary[int, _core.Store] = weakref.WeakValueDictionary()


def _new_store(kind: str) -> _core.Store:
    store = _core.Store(kind, CAPACITY, _Pickling)
    _open[store.id] = store
    return store


def _attach(locator: Locator) -> _core.Store | None:
    pid, fd, ident = locator
    store = _open.get(ident)
    if store is None:
        try:
            store = _core.Store.attach_from_process(pid, fd, ident, _Pickling)
        except (OSError, ValueError):
            return None
        _open[ident] = store
    return store


class _Shared:
    """What the server holds for a container: its store, and the methods remote proxies
    call. Also used in client processes over their own mapping of the same store."""

    _kind: ClassVar[str]
    _store: _core.Store

    def _store_locator(self) -> Locator:
        return os.getpid(), self._store.fd, self._store.id

    @classmethod
    def _over(cls, store: _core.Store) -> Any:
        shared = cls.__new__(cls)
        object.__setattr__(shared, "_store", store)
        return shared


class SharedDict(_Shared):
    """A dict in a shared store; the methods of ``DictProxy``."""

    _kind = "map"

    def __init__(self, *args: Any, **kwds: Any) -> None:
        self._store = _new_store("map")
        self.update(*args, **kwds)

    def __getitem__(self, key: Any) -> Any:
        return self._store.map_get(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._store.map_set(key, value)

    def __delitem__(self, key: Any) -> None:
        self._store.map_delete(key)

    def __contains__(self, key: Any) -> bool:
        return self._store.map_contains(key)

    def __len__(self) -> int:
        return self._store.map_len()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._store.map_keys())

    def get(self, key: Any, default: Any = None) -> Any:
        return self._store.map_get_or(key, default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self._store.map_setdefault(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        return self._store.map_pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        return self._store.map_popitem()

    def keys(self) -> list[Any]:
        return self._store.map_keys()

    def values(self) -> list[Any]:
        return self._store.map_values()

    def items(self) -> list[tuple[Any, Any]]:
        return self._store.map_items()

    def clear(self) -> None:
        self._store.map_clear()

    def copy(self) -> dict[Any, Any]:
        return dict(self._store.map_items())

    def update(self, *args: Any, **kwds: Any) -> None:
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 argument, got {len(args)}")
        pairs: list[tuple[Any, Any]] = []
        if args:
            other = args[0]
            if hasattr(other, "keys"):
                # The mapping protocol of dict.update: keys(), then each item.
                pairs.extend((key, other[key]) for key in other.keys())  # noqa: SIM118
            else:
                for number, pair in enumerate(other):
                    items = tuple(pair)
                    if len(items) != 2:
                        raise ValueError(
                            f"dictionary update sequence element #{number} has length "
                            f"{len(items)}; 2 is required"
                        )
                    pairs.append((items[0], items[1]))
        pairs.extend(kwds.items())
        if pairs:
            self._store.map_update(pairs)

    def __repr__(self) -> str:
        return repr(self.copy())

    def __str__(self) -> str:
        return str(self.copy())


@contextlib.contextmanager
def _held(store: _core.Store) -> Iterator[_core.Store]:
    """The store's (recursive) lock, held around a compound operation."""
    store.acquire()
    try:
        yield store
    finally:
        store.release()


def _position(index: SupportsIndex, length: int, message: str) -> int:
    """``index`` (negative: from the end) as a position below ``length``."""
    position = operator.index(index)
    if position < 0:
        position += length
    if not 0 <= position < length:
        raise IndexError(message)
    return position


def _clamped(index: SupportsIndex, length: int) -> int:
    position = index.__index__()
    if position < 0:
        position = max(position + length, 0)
    return min(position, length)


class SharedList(_Shared):
    """A list in a shared store; the methods of ``ListProxy``. Inserting and removing
    items moves their offsets in the core, values untouched; what only Python can compute
    (sorting, extended slices) reads the list, changes it and writes it back, all under
    the store's lock."""

    _kind = "sequence"

    def __init__(self, sequence: Iterable[Any] = ()) -> None:
        self._store = _new_store("sequence")
        items = list(sequence)
        if items:
            self._store.seq_splice(0, None, items)

    def _rewrite(self, change: Callable[[list[Any]], Any]) -> Any:
        with _held(self._store) as store:
            items = store.seq_items()
            result = change(items)
            store.seq_splice(0, None, items)
            return result

    def __len__(self) -> int:
        return self._store.seq_len()

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self._store.seq_items()[index]
        return self._store.seq_get(index.__index__())

    def __setitem__(self, index: Any, value: Any) -> None:
        if not isinstance(index, slice):
            self._store.seq_set(index.__index__(), value)
            return
        if index.step is None or index.step == 1:
            values = list(value)
            with _held(self._store) as store:
                start, stop, _ = index.indices(store.seq_len())
                store.seq_splice(start, max(start, stop), values)
            return

        def assign(items: list[Any]) -> None:
            items[index] = value

        self._rewrite(assign)

    def __delitem__(self, index: Any) -> None:
        if isinstance(index, slice) and index.step not in (None, 1):

            def delete(items: list[Any]) -> None:
                del items[index]

            self._rewrite(delete)
            return
        with _held(self._store) as store:
            length = store.seq_len()
            if isinstance(index, slice):
                start, stop, _ = index.indices(length)
            else:
                start = _position(index, length, "list assignment index out of range")
                stop = start + 1
            store.seq_splice(start, max(start, stop), [])

    def __contains__(self, value: Any) -> bool:
        return value in self._store.seq_items()

    def __iter__(self) -> Iterator[Any]:
        items: list[Any] = self._store.seq_items()
        return iter(items)

    def __reversed__(self) -> Iterator[Any]:
        items: list[Any] = self._store.seq_items()
        return iter(items[::-1])

    def __add__(self, other: list[Any]) -> list[Any]:
        items: list[Any] = self._store.seq_items()
        return items + other

    def __radd__(self, other: list[Any]) -> list[Any]:
        items: list[Any] = self._store.seq_items()
        return other + items

    def __mul__(self, count: SupportsIndex) -> list[Any]:
        return self._store.seq_items() * count

    __rmul__ = __mul__

    # A list's += extends in place and returns the list itself, unlike +.
    def __iadd__(self, other: Iterable[Any]) -> SharedList:
        self.extend(other)
        return self

    def __imul__(self, count: SupportsIndex) -> SharedList:
        def repeat(items: list[Any]) -> None:
            items *= count

        self._rewrite(repeat)
        return self

    def append(self, value: Any) -> None:
        self._store.seq_append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self._store.seq_splice(sys.maxsize, None, list(values))

    def insert(self, index: SupportsIndex, value: Any) -> None:
        with _held(self._store) as store:
            position = _clamped(index, store.seq_len())
            store.seq_splice(position, position, [value])

    def pop(self, index: SupportsIndex = -1) -> Any:
        with _held(self._store) as store:
            length = store.seq_len()
            if not length:
                raise IndexError("pop from empty list")
            position = _position(index, length, "pop index out of range")
            value = store.seq_get(position)
            store.seq_splice(position, position + 1, [])
            return value

    def remove(self, value: Any) -> None:
        with _held(self._store) as store:
            try:
                position = store.seq_items().index(value)
            except ValueError:
                raise ValueError("list.remove(x): x not in list") from None
            store.seq_splice(position, position + 1, [])

    def count(self, value: Any) -> int:
        return self._store.seq_items().count(value)

    def index(self, value: Any, *bounds: SupportsIndex) -> int:
        return self._store.seq_items().index(value, *bounds)

    def reverse(self) -> None:
        self._rewrite(list.reverse)

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        def order(items: list[Any]) -> None:
            items.sort(key=key, reverse=reverse)

        self._rewrite(order)

    def clear(self) -> None:
        self._store.seq_splice(0, None, [])

    def copy(self) -> list[Any]:
        return self._store.seq_items()

    def __repr__(self) -> str:
        return repr(self._store.seq_items())

    def __str__(self) -> str:
        return str(self._store.seq_items())


class SharedNamespace(_Shared):
    """A ``Namespace`` whose attributes are the keys of a shared map."""

    _kind = "map"

    def __init__(self, /, **kwds: Any) -> None:
        object.__setattr__(self, "_store", _new_store("map"))
        if kwds:
            self._store.map_update(list(kwds.items()))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._store.map_get(name)
        except KeyError:
            raise AttributeError(f"'Namespace' object has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._store.map_set(name, value)

    def __delattr__(self, name: str) -> None:
        try:
            self._store.map_delete(name)
        except KeyError:
            raise AttributeError(name) from None

    def __getattribute__(self, name: str) -> Any:
        # Only the store and the server's entry points are real attributes; everything
        # else, underscored or not, is the namespace's.
        if name in _NAMESPACE_OWN:
            return object.__getattribute__(self, name)
        return SharedNamespace.__getattr__(self, name)

    def _namespace(self) -> Any:
        from .managers import Namespace

        return Namespace(**dict(self._store.map_items()))

    def __repr__(self) -> str:
        return repr(self._namespace())


_NAMESPACE_OWN = frozenset(
    {
        "_store",
        "_store_locator",
        "_namespace",
        "_over",
        "_kind",
        "__class__",
        "__dict__",
        "__repr__",
        "__str__",
        "__reduce_ex__",
        "__reduce__",
        "__getstate__",
        "__setstate__",
        "__init__",
    }
)


class SharedValue(_Shared):
    """The ``Value`` of a manager (a typecode and a value, with no size limit and no
    type check, as in the stdlib) in a shared map."""

    _kind = "map"

    def __init__(self, typecode: Any, value: Any, lock: Any = True) -> None:
        self._store = _new_store("map")
        self._store.map_update([("typecode", typecode), ("value", value)])

    def get(self) -> Any:
        return self._store.map_get("value")

    def set(self, value: Any) -> None:
        self._store.map_set("value", value)

    value = property(get, set)

    def _stdlib_value(self) -> Any:
        from .managers import Value

        return Value(self._store.map_get("typecode"), self.get())

    def __repr__(self) -> str:
        return f"Value({self._store.map_get('typecode')!r}, {self.get()!r})"


# The proxies: each finds its container's store on first use and works on it directly;
# where it cannot open the store, it is an ordinary proxy to the server.


class _StoreProxy(BaseProxy):
    _shared_type: ClassVar[type[_Shared]]
    _local: Any
    _store: _core.Store | None

    def __init__(self, *args: Any, **kwds: Any) -> None:
        super().__init__(*args, **kwds)
        self._connect_store()

    def _connect_store(self) -> None:
        local = None
        server = _own_server(self._token.address)
        if server is not None:
            referent = server._lookup(self._token.id)[0]
            if isinstance(referent, _Shared):
                local = referent
        else:
            try:
                locator = self._callmethod("_store_locator")
            except (RemoteError, AttributeError):
                locator = None  # a plain object in the server: every call goes there
            store = None if locator is None else _attach(locator)
            local = None if store is None else self._shared_type._over(store)
        object.__setattr__(self, "_local", local)
        # The store itself, for the hottest paths (None: every call goes to the server).
        object.__setattr__(self, "_store", None if local is None else local._store)


def _forward(name: str) -> Callable[..., Any]:
    def method(self: _StoreProxy, /, *args: Any, **kwds: Any) -> Any:
        local = self._local
        if local is None:
            return self._callmethod(name, args, kwds)
        return getattr(local, name)(*args, **kwds)

    method.__name__ = name
    return method


class DictProxy(_StoreProxy, _proxies.DictProxy):
    """A proxy to a dict: one in shared memory is used directly; any other (a plain
    ``dict`` registered by a custom manager) is reached through the server."""

    _exposed_ = (*_proxies.DictProxy._exposed_, "_store_locator")
    _method_to_typeid_: ClassVar[dict[str, str]] = {}
    _shared_type = SharedDict

    __contains__ = _forward("__contains__")
    __delitem__ = _forward("__delitem__")
    __len__ = _forward("__len__")
    clear = _forward("clear")
    copy = _forward("copy")
    get = _forward("get")
    items = _forward("items")
    keys = _forward("keys")
    pop = _forward("pop")
    popitem = _forward("popitem")
    setdefault = _forward("setdefault")
    update = _forward("update")
    values = _forward("values")

    # The hot paths, without the generic forwarding.
    def __getitem__(self, key: Any) -> Any:
        store = self._store
        if store is None:
            return self._callmethod("__getitem__", (key,))
        return store.map_get(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        store = self._store
        if store is None:
            self._callmethod("__setitem__", (key, value))
        else:
            store.map_set(key, value)

    def __iter__(self) -> Iterator[Any]:
        return _KeyIterator(self, self.keys())

    def _getvalue(self) -> Any:
        local = self._local
        return self._callmethod("copy") if local is None else local.copy()


class _KeyIterator:
    """Iterates over a snapshot of a shared dict's keys, failing as a dict iterator does
    if the dict's size changes meanwhile."""

    def __init__(self, mapping: DictProxy, keys: list[Any]) -> None:
        self._mapping = mapping
        self._size = len(keys)
        self._keys = iter(keys)

    def __iter__(self) -> _KeyIterator:
        return self

    def __next__(self) -> Any:
        key = next(self._keys)
        if len(self._mapping) != self._size:
            self._size = -1
            raise RuntimeError("dictionary changed size during iteration")
        return key


class ListProxy(_StoreProxy, _proxies.ListProxy):
    """A proxy to a list: one in shared memory is used directly, any other through the
    server."""

    _exposed_ = (*_proxies.ListProxy._exposed_, "copy", "clear", "_store_locator")
    _method_to_typeid_: ClassVar[dict[str, str]] = {}
    _shared_type = SharedList

    __add__ = _forward("__add__")
    __contains__ = _forward("__contains__")
    __delitem__ = _forward("__delitem__")
    __getitem__ = _forward("__getitem__")
    __len__ = _forward("__len__")
    __mul__ = _forward("__mul__")
    __reversed__ = _forward("__reversed__")
    __rmul__ = _forward("__rmul__")
    __setitem__ = _forward("__setitem__")
    append = _forward("append")
    count = _forward("count")
    extend = _forward("extend")
    index = _forward("index")
    insert = _forward("insert")
    pop = _forward("pop")
    remove = _forward("remove")
    reverse = _forward("reverse")
    sort = _forward("sort")
    copy = _forward("copy")
    clear = _forward("clear")

    # No __iter__: iteration indexes the live list until IndexError, as the stdlib's
    # proxy does, so a change made during the iteration shows in it.

    def __iadd__(self, other: Iterable[Any]) -> ListProxy:  # type: ignore[misc]
        self.extend(list(other))
        return self

    def __imul__(self, count: SupportsIndex) -> ListProxy:  # type: ignore[misc]
        local = self._local
        if local is None:
            self._callmethod("__imul__", (count,))
        else:
            local.__imul__(count)
        return self

    def _getvalue(self) -> Any:
        local = self._local
        return self._callmethod("copy") if local is None else local.copy()


class NamespaceProxy(_StoreProxy, _proxies.NamespaceProxy):
    """A proxy to a shared namespace: attributes not starting with ``_`` are the
    namespace's."""

    _exposed_ = (
        "__getattribute__",
        "__setattr__",
        "__delattr__",
        "_namespace",
        "_store_locator",
    )
    _shared_type = SharedNamespace

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        local = object.__getattribute__(self, "_local")
        if local is None:
            return self._callmethod("__getattribute__", (name,))
        return SharedNamespace.__getattr__(local, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        local = self._local
        if local is None:
            self._callmethod("__setattr__", (name, value))
        else:
            local._store.map_set(name, value)

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            object.__delattr__(self, name)
            return
        local = self._local
        if local is None:
            self._callmethod("__delattr__", (name,))
        else:
            SharedNamespace.__delattr__(local, name)

    def _getvalue(self) -> Any:
        local = self._local
        if local is None:
            return self._callmethod("_namespace")
        return local._namespace()


class ValueProxy(_StoreProxy, _proxies.ValueProxy):
    """A proxy to a shared ``Value``."""

    _exposed_ = ("get", "set", "_stdlib_value", "_store_locator")
    _shared_type = SharedValue

    def get(self) -> Any:
        store = self._store
        if store is None:
            return self._callmethod("get")
        return store.map_get("value")

    def set(self, value: Any) -> None:
        store = self._store
        if store is None:
            self._callmethod("set", (value,))
        else:
            store.map_set("value", value)

    value = property(get, set)

    def _getvalue(self) -> Any:
        local = self._local
        return self._callmethod("_stdlib_value") if local is None else local._stdlib_value()
