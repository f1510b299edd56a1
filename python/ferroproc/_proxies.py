"""Proxies: the client side of a manager's shared objects (``ferroproc.managers``).

A proxy holds a ``Token`` (type id, server address, object id) and forwards method calls
to the server on a connection its thread keeps (``_callmethod``). While it lives it holds
one reference to its object in the server: taken when it is made or unpickled, and in a
forked child again for the child (``_after_fork``); given back by a ``util.Finalize`` when
it is collected or at exit.

A proxy type defined elsewhere may subclass ``BaseProxy`` and answer some methods itself
(e.g. from shared memory) without the server: ``_token``, ``_manager``, ``_authkey``,
``_serializer`` and ``_callmethod`` are there for it.
"""

from __future__ import annotations

import threading
import time
import types

from . import process, util
from ._manager_server import State, Token, convert_to_error, dispatch, listener_client
from .context import get_spawning_popen

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, ClassVar

__all__ = [
    "AcquirerProxy",
    "ArrayProxy",
    "AutoProxy",
    "BarrierProxy",
    "BaseListProxy",
    "BaseProxy",
    "ConditionProxy",
    "DictProxy",
    "EventProxy",
    "IteratorProxy",
    "ListProxy",
    "MakeProxyType",
    "NamespaceProxy",
    "PoolProxy",
    "RebuildProxy",
    "ValueProxy",
]


class ProcessLocalSet(set):  # type: ignore[type-arg]
    """A set emptied in each forked child: the ids this process holds references to."""

    def __init__(self) -> None:
        util.register_after_fork(self, lambda obj: obj.clear())

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), ()


class BaseProxy:
    """A proxy of an object that lives in a manager's server."""

    _address_to_local: ClassVar[dict[Any, tuple[Any, ProcessLocalSet]]] = {}
    _mutex = util.ForkAwareThreadLock()
    _exposed_: ClassVar[tuple[str, ...]]
    _method_to_typeid_: ClassVar[dict[str, str] | None] = None
    _close: util.Finalize

    def __init__(  # noqa: PLR0917
        self,
        token: Token,
        serializer: str,
        manager: Any = None,
        authkey: bytes | None = None,
        exposed: Iterable[str] | None = None,
        incref: bool = True,
        manager_owned: bool = False,
    ) -> None:
        with BaseProxy._mutex:
            tls_idset = BaseProxy._address_to_local.get(token.address)
            if tls_idset is None:
                tls_idset = util.ForkAwareLocal(), ProcessLocalSet()
                BaseProxy._address_to_local[token.address] = tls_idset
        # The connection this thread uses to call methods on the server at this address.
        self._tls = tls_idset[0]
        # The ids of the objects of that server this process holds references to.
        self._idset = tls_idset[1]
        self._token = token
        self._id = token.id
        self._manager = manager
        self._serializer = serializer
        self._Client = listener_client[serializer][1]
        # True for a proxy unpickled inside its own server (a managed object held by
        # another, e.g. a dict in a managed list): it holds no reference of its own.
        self._owned_by_manager = manager_owned
        if authkey is not None:
            self._authkey = process.AuthenticationString(authkey)
        elif manager is not None:
            self._authkey = process.AuthenticationString(manager._authkey)
        else:
            self._authkey = process.AuthenticationString(process.current_process().authkey)
        if incref:
            self._incref()
        util.register_after_fork(self, BaseProxy._after_fork)

    def _connect(self) -> None:
        util.debug("making connection to manager")
        name = process.current_process().name
        thread = threading.current_thread()
        if thread is not threading.main_thread():
            name += "|" + thread.name
        conn = self._Client(self._token.address, authkey=self._authkey)
        dispatch(conn, None, "accept_connection", (name,))
        self._tls.connection = conn

    def _callmethod(
        self, methodname: str, args: tuple[Any, ...] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        """Call ``methodname`` on the referent and return (a copy of) the result."""
        try:
            conn = self._tls.connection
        except AttributeError:
            util.debug("thread %r does not own a connection", threading.current_thread().name)
            self._connect()
            conn = self._tls.connection
        conn.send((self._id, methodname, args, kwds or {}))
        kind, result = conn.recv()
        if kind == "#RETURN":
            return result
        if kind == "#PROXY":
            exposed, token = result
            proxytype = _proxytype_for(token.typeid, self._manager)
            token.address = self._token.address
            proxy = proxytype(
                token,
                self._serializer,
                manager=self._manager,
                authkey=self._authkey,
                exposed=exposed,
            )
            # The server counted one reference for the proxy it made; this one has its own.
            with self._Client(token.address, authkey=self._authkey) as once:
                dispatch(once, None, "decref", (token.id,))
            return proxy
        raise convert_to_error(kind, result)

    def _getvalue(self) -> Any:
        """A copy of the referent."""
        return self._callmethod("#GETVALUE")

    def _incref(self) -> None:
        if self._owned_by_manager:
            util.debug("owned_by_manager skipped INCREF of %r", self._token.id)
            return
        with self._Client(self._token.address, authkey=self._authkey) as conn:
            dispatch(conn, None, "incref", (self._id,))
        util.debug("INCREF %r", self._token.id)
        self._idset.add(self._id)
        state = self._manager._state if self._manager is not None else None
        self._close = util.Finalize(
            self,
            BaseProxy._decref,
            args=(self._token, self._authkey, state, self._tls, self._idset, self._Client),
            exitpriority=10,
        )

    @staticmethod
    def _decref(
        token: Token,
        authkey: bytes,
        state: State | None,
        tls: Any,
        idset: set[str],
        _Client: Callable[..., Any],
    ) -> None:
        idset.discard(token.id)
        if state is None or state.value == State.STARTED:
            try:
                util.debug("DECREF %r", token.id)
                with _Client(token.address, authkey=authkey) as conn:
                    dispatch(conn, None, "decref", (token.id,))
            except Exception as exc:
                util.debug("... decref failed %s", exc)
        else:
            util.debug("DECREF %r -- manager already shutdown", token.id)
        # The thread's connection can go once this process holds nothing of that server.
        if not idset and hasattr(tls, "connection"):
            util.debug(
                "thread %r has no more proxies so closing conn", threading.current_thread().name
            )
            tls.connection.close()
            del tls.connection

    def _after_fork(self) -> None:
        self._manager = None
        try:
            self._incref()
        except Exception as exc:
            # The manager may have shut down already.
            util.info(f"incref failed: {exc}")

    def __reduce__(self) -> tuple[Any, ...]:
        kwds: dict[str, Any] = {}
        if get_spawning_popen() is not None:
            kwds["authkey"] = self._authkey
        if getattr(self, "_isauto", False):
            kwds["exposed"] = self._exposed_
            return (RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        return (RebuildProxy, (type(self), self._token, self._serializer, kwds))

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self._getvalue()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object, typeid {self._token.typeid!r} at {id(self):#x}>"

    def __str__(self) -> str:
        """The referent's representation, or a fall-back if the server cannot give it."""
        try:
            return str(self._callmethod("__repr__"))
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


def _proxytype_for(typeid: str, manager: Any) -> Callable[..., Any]:
    """The proxy type for shared objects of ``typeid`` a method returned."""
    if manager is not None:
        found: Callable[..., Any] = manager._registry[typeid][-1]
        return found
    # A proxy unpickled or inherited by a forked child has no manager: SyncManager's
    # types are known; any other gets an automatic proxy of the methods it exposes.
    from .managers import SyncManager

    entry = SyncManager._registry.get(typeid)
    return entry[-1] if entry is not None else AutoProxy


def RebuildProxy(
    func: Callable[..., Any], token: Token, serializer: str, kwds: dict[str, Any]
) -> Any:
    """Unpickle a proxy (the counterpart of ``BaseProxy.__reduce__``)."""
    server = getattr(process.current_process(), "_manager_server", None)
    if server is not None and server.address == token.address:
        util.debug("Rebuild a proxy owned by manager, token=%r", token)
        kwds["manager_owned"] = True
        if token.id not in server.id_to_local_proxy_obj:
            server.id_to_local_proxy_obj[token.id] = server.id_to_obj[token.id]
    incref = kwds.pop("incref", True) and not getattr(
        process.current_process(), "_inheriting", False
    )
    return func(token, serializer, incref=incref, **kwds)


def _forwarder(name: str) -> Callable[..., Any]:
    def method(self: BaseProxy, /, *args: Any, **kwds: Any) -> Any:
        return self._callmethod(name, args, kwds)

    method.__name__ = method.__qualname__ = name
    return method


_proxy_types: dict[tuple[str, tuple[str, ...]], type[BaseProxy]] = {}


def MakeProxyType(name: str, exposed: Iterable[str]) -> type[BaseProxy]:
    """A ``BaseProxy`` subclass with one forwarding method per name in ``exposed``."""
    exposed = tuple(exposed)
    try:
        return _proxy_types[(name, exposed)]
    except KeyError:
        pass
    namespace: dict[str, Any] = {meth: _forwarder(meth) for meth in exposed}
    namespace["_exposed_"] = exposed
    proxytype = type(name, (BaseProxy,), namespace)
    _proxy_types[(name, exposed)] = proxytype
    return proxytype


def AutoProxy(  # noqa: PLR0917
    token: Token,
    serializer: str,
    manager: Any = None,
    authkey: bytes | None = None,
    exposed: Iterable[str] | None = None,
    incref: bool = True,
    manager_owned: bool = False,
) -> BaseProxy:
    """A proxy whose methods are those the server exposes for the object."""
    if authkey is None and manager is not None:
        authkey = manager._authkey
    if authkey is None:
        authkey = process.current_process().authkey
    if exposed is None:
        with listener_client[serializer][1](token.address, authkey=authkey) as conn:
            exposed = dispatch(conn, None, "get_methods", (token,))
    assert exposed is not None
    proxytype = MakeProxyType(f"AutoProxy[{token.typeid}]", exposed)
    proxy = proxytype(
        token,
        serializer,
        manager=manager,
        authkey=authkey,
        incref=incref,
        manager_owned=manager_owned,
    )
    proxy._isauto = True  # type: ignore[attr-defined]
    return proxy


# --- the proxy types of SyncManager --------------------------------------------------


class IteratorProxy(BaseProxy):
    _exposed_ = ("__next__", "send", "throw", "close")

    def __iter__(self) -> IteratorProxy:
        return self

    def __next__(self, *args: Any) -> Any:
        return self._callmethod("__next__", args)

    def send(self, *args: Any) -> Any:
        return self._callmethod("send", args)

    def throw(self, *args: Any) -> Any:
        return self._callmethod("throw", args)

    def close(self, *args: Any) -> Any:
        return self._callmethod("close", args)


class AcquirerProxy(BaseProxy):
    _exposed_: ClassVar[tuple[str, ...]] = ("acquire", "release")

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> Any:
        args = (blocking,) if timeout is None else (blocking, timeout)
        return self._callmethod("acquire", args)

    def release(self) -> Any:
        return self._callmethod("release")

    def __enter__(self) -> Any:
        return self._callmethod("acquire")

    def __exit__(self, *exc_info: object) -> Any:
        return self._callmethod("release")


class ConditionProxy(AcquirerProxy):
    _exposed_: ClassVar[tuple[str, ...]] = ("acquire", "release", "wait", "notify", "notify_all")

    def wait(self, timeout: float | None = None) -> Any:
        return self._callmethod("wait", (timeout,))

    def notify(self, n: int = 1) -> Any:
        return self._callmethod("notify", (n,))

    def notify_all(self) -> Any:
        return self._callmethod("notify_all")

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until ``predicate()`` is true (checked here, between waits) or time is up."""
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        waittime = None
        while not result:
            if deadline is not None:
                waittime = deadline - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class EventProxy(BaseProxy):
    _exposed_ = ("is_set", "set", "clear", "wait")

    def is_set(self) -> Any:
        return self._callmethod("is_set")

    def set(self) -> Any:
        return self._callmethod("set")

    def clear(self) -> Any:
        return self._callmethod("clear")

    def wait(self, timeout: float | None = None) -> Any:
        return self._callmethod("wait", (timeout,))


class BarrierProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "wait", "abort", "reset")

    def wait(self, timeout: float | None = None) -> Any:
        return self._callmethod("wait", (timeout,))

    def abort(self) -> Any:
        return self._callmethod("abort")

    def reset(self) -> Any:
        return self._callmethod("reset")

    @property
    def parties(self) -> Any:
        return self._callmethod("__getattribute__", ("parties",))

    @property
    def n_waiting(self) -> Any:
        return self._callmethod("__getattribute__", ("n_waiting",))

    @property
    def broken(self) -> Any:
        return self._callmethod("__getattribute__", ("broken",))


class NamespaceProxy(BaseProxy):
    _exposed_: ClassVar[tuple[str, ...]] = ("__getattribute__", "__setattr__", "__delattr__")

    def __getattr__(self, key: str) -> Any:
        if key[0] == "_":
            return object.__getattribute__(self, key)
        callmethod = object.__getattribute__(self, "_callmethod")
        return callmethod("__getattribute__", (key,))

    def __setattr__(self, key: str, value: Any) -> None:
        if key[0] == "_":
            object.__setattr__(self, key, value)
            return
        callmethod = object.__getattribute__(self, "_callmethod")
        callmethod("__setattr__", (key, value))

    def __delattr__(self, key: str) -> None:
        if key[0] == "_":
            object.__delattr__(self, key)
            return
        callmethod = object.__getattribute__(self, "_callmethod")
        callmethod("__delattr__", (key,))


class ValueProxy(BaseProxy):
    _exposed_: ClassVar[tuple[str, ...]] = ("get", "set")

    def get(self) -> Any:
        return self._callmethod("get")

    def set(self, value: Any) -> Any:
        return self._callmethod("set", (value,))

    value = property(get, set)

    __class_getitem__: Any = classmethod(types.GenericAlias)


class BaseListProxy(BaseProxy):
    """Forwards the list methods to a shared ``list``."""

    _exposed_: ClassVar[tuple[str, ...]] = (
        "__add__",
        "__contains__",
        "__delitem__",
        "__getitem__",
        "__len__",
        "__mul__",
        "__reversed__",
        "__rmul__",
        "__setitem__",
        "append",
        "count",
        "extend",
        "index",
        "insert",
        "pop",
        "remove",
        "reverse",
        "sort",
        "__imul__",
    )

    def __add__(self, other: Any) -> Any:
        return self._callmethod("__add__", (other,))

    __contains__ = _forwarder("__contains__")
    __delitem__ = _forwarder("__delitem__")
    __getitem__ = _forwarder("__getitem__")
    __len__ = _forwarder("__len__")

    def __mul__(self, other: Any) -> Any:
        return self._callmethod("__mul__", (other,))

    __reversed__ = _forwarder("__reversed__")
    __rmul__ = _forwarder("__rmul__")
    __setitem__ = _forwarder("__setitem__")
    append = _forwarder("append")
    count = _forwarder("count")
    extend = _forwarder("extend")
    index = _forwarder("index")
    insert = _forwarder("insert")
    pop = _forwarder("pop")
    remove = _forwarder("remove")
    reverse = _forwarder("reverse")
    sort = _forwarder("sort")
    __imul__ = _forwarder("__imul__")


class ListProxy(BaseListProxy):
    def __iadd__(self, value: Any) -> ListProxy:
        self._callmethod("extend", (value,))
        return self

    def __imul__(self, value: Any) -> ListProxy:
        self._callmethod("__imul__", (value,))
        return self

    __class_getitem__: Any = classmethod(types.GenericAlias)


class DictProxy(BaseProxy):
    """Forwards the dict methods to a shared ``dict``; iterating gives an ``IteratorProxy``."""

    _exposed_: ClassVar[tuple[str, ...]] = (
        "__contains__",
        "__delitem__",
        "__getitem__",
        "__iter__",
        "__len__",
        "__setitem__",
        "clear",
        "copy",
        "get",
        "items",
        "keys",
        "pop",
        "popitem",
        "setdefault",
        "update",
        "values",
    )
    _method_to_typeid_: ClassVar[dict[str, str] | None] = {"__iter__": "Iterator"}
    __contains__ = _forwarder("__contains__")
    __delitem__ = _forwarder("__delitem__")
    __getitem__ = _forwarder("__getitem__")
    __iter__ = _forwarder("__iter__")
    __len__ = _forwarder("__len__")
    __setitem__ = _forwarder("__setitem__")
    clear = _forwarder("clear")
    copy = _forwarder("copy")
    get = _forwarder("get")
    items = _forwarder("items")
    keys = _forwarder("keys")
    pop = _forwarder("pop")
    popitem = _forwarder("popitem")
    setdefault = _forwarder("setdefault")
    update = _forwarder("update")
    values = _forwarder("values")

    __class_getitem__: Any = classmethod(types.GenericAlias)


ArrayProxy = MakeProxyType("ArrayProxy", ("__len__", "__getitem__", "__setitem__"))


BasePoolProxy = MakeProxyType(
    "PoolProxy",
    (
        "apply",
        "apply_async",
        "close",
        "imap",
        "imap_unordered",
        "join",
        "map",
        "map_async",
        "starmap",
        "starmap_async",
        "terminate",
    ),
)
BasePoolProxy._method_to_typeid_ = {
    "apply_async": "AsyncResult",
    "map_async": "AsyncResult",
    "starmap_async": "AsyncResult",
    "imap": "Iterator",
    "imap_unordered": "Iterator",
}


class PoolProxy(BasePoolProxy):  # type: ignore[valid-type, misc]
    def __enter__(self) -> PoolProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.terminate()
