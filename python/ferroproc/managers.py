"""Managers: the stdlib's ``multiprocessing.managers`` API.

::

    manager = SyncManager(); manager.start()
        │  ctx.Process ──▶ server process: Server (``_manager_server``) on a Listener
        │                  (a private Unix socket, or TCP when ``address`` says so);
        │                  shared objects live there, one thread per client connection
        ▼
    manager.dict() ── 'create' ──▶ server ──▶ DictProxy (``_store``) in the caller
    proxy.method() ── the calling thread's connection ──▶ the object's method, in the server

The server ignores SIGINT (a Ctrl-C reaches the whole process group; the parent stops it
through ``shutdown()``) and exits when the process that started it exits, however that
happens. ``SharedMemoryManager`` creates segments in the caller and has the server
unlink them when it stops.
"""

from __future__ import annotations

import array
import os
import queue
import threading

from . import _store, connection, context, process, util
from ._manager_server import (
    RemoteError,
    Server,
    SharedMemoryServer,
    State,
    Token,
    XmlClient,
    XmlListener,
    all_methods,
    convert_to_error,
    dispatch,
    listener_client,
    public_methods,
    run_server,
)
from ._proxies import (
    AcquirerProxy,
    ArrayProxy,
    AutoProxy,
    BarrierProxy,
    BaseListProxy,
    BaseProxy,
    ConditionProxy,
    EventProxy,
    IteratorProxy,
    MakeProxyType,
    PoolProxy,
    ProcessLocalSet,
    RebuildProxy,
)
from ._store import DictProxy, ListProxy, NamespaceProxy, ValueProxy
from .context import ProcessError

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, ClassVar

    from .shared_memory import ShareableList, SharedMemory

__all__ = [
    "BaseManager",
    "BaseProxy",
    "RemoteError",
    "SharedMemoryManager",
    "SyncManager",
    "Token",
]

# Re-exported for code that reaches them through this module, as in the stdlib.
_reexported = (
    AcquirerProxy,
    ArrayProxy,
    AutoProxy,
    BarrierProxy,
    BaseListProxy,
    ConditionProxy,
    DictProxy,
    EventProxy,
    IteratorProxy,
    ListProxy,
    MakeProxyType,
    NamespaceProxy,
    PoolProxy,
    ProcessLocalSet,
    RebuildProxy,
    ValueProxy,
    Server,
    SharedMemoryServer,
    XmlClient,
    XmlListener,
    all_methods,
    public_methods,
    convert_to_error,
)


# --- the manager ---------------------------------------------------------------------


class BaseManager:
    """Starts (or connects to) a server process holding shared objects, and makes
    proxies of them. Subclasses add object types with :meth:`register`."""

    _registry: ClassVar[dict[str, tuple[Any, ...]]] = {}
    _Server: ClassVar[type[Server]] = Server
    #: Set by ``start``: stops the server (a ``util.Finalize``, also run at exit).
    shutdown: util.Finalize

    def __init__(
        self,
        address: Any = None,
        authkey: bytes | None = None,
        serializer: str = "pickle",
        ctx: Any = None,
        *,
        shutdown_timeout: float = 1.0,
    ) -> None:
        if authkey is None:
            authkey = process.current_process().authkey
        self._address = address
        self._authkey = process.AuthenticationString(authkey)
        self._state = State()
        self._state.value = State.INITIAL
        self._serializer = serializer
        self._Listener, self._Client = listener_client[serializer]
        self._ctx = ctx or context._default_context
        self._shutdown_timeout = shutdown_timeout
        self._process: Any = None

    def _check_initial(self) -> None:
        value = self._state.value
        if value == State.INITIAL:
            return
        if value == State.STARTED:
            raise ProcessError("Already started server")
        if value == State.SHUTDOWN:
            raise ProcessError("Manager has shut down")
        raise ProcessError(f"Unknown state {value!r}")

    def get_server(self) -> Server:
        """A server for this manager's objects, to run in this process (``serve_forever``)."""
        self._check_initial()
        return self._Server(self._registry, self._address, self._authkey, self._serializer)

    def connect(self) -> None:
        """Connect to a server already running at ``address`` (started elsewhere)."""
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            dispatch(conn, None, "dummy")
        finally:
            conn.close()
        self._state.value = State.STARTED

    def start(
        self, initializer: Callable[..., object] | None = None, initargs: Iterable[Any] = ()
    ) -> None:
        """Start the server process; ``initializer(*initargs)`` runs there first."""
        self._check_initial()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        reader, writer = connection.Pipe(duplex=False)
        self._process = self._ctx.Process(
            target=run_server,
            args=(
                self._Server,
                self._registry,
                self._address,
                self._authkey,
                self._serializer,
                writer,
                initializer,
                tuple(initargs),
            ),
        )
        ident = ":".join(str(i) for i in self._process._identity)
        self._process.name = f"{type(self).__name__}-{ident}"
        self._process.start()
        writer.close()
        try:
            self._address = reader.recv()
        except EOFError:
            self._process.join()
            raise ProcessError(
                f"the manager's server process exited with code {self._process.exitcode} "
                "before it was ready"
            ) from None
        finally:
            reader.close()
        self._state.value = State.STARTED
        self.shutdown = util.Finalize(
            self,
            type(self)._finalize_manager,
            args=(
                self._process,
                self._address,
                self._authkey,
                self._state,
                self._Client,
                self._shutdown_timeout,
            ),
            exitpriority=0,
        )

    @classmethod
    def _run_server(  # noqa: PLR0917
        cls,
        registry: dict[str, tuple[Any, ...]],
        address: Any,
        authkey: bytes,
        serializer: str,
        writer: connection.Connection,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
    ) -> None:
        """The server process's body (kept for code that calls it directly)."""
        run_server(
            cls._Server, registry, address, authkey, serializer, writer, initializer, initargs
        )

    def _create(self, typeid: str, /, *args: Any, **kwds: Any) -> tuple[Token, tuple[str, ...]]:
        """Create a shared object of ``typeid``; return its token and exposed methods."""
        assert self._state.value == State.STARTED, "server not yet started"
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            ident, exposed = dispatch(conn, None, "create", (typeid, *args), kwds)
        finally:
            conn.close()
        return Token(typeid, self._address, ident), exposed

    def join(self, timeout: float | None = None) -> None:
        """Wait for the server process to exit."""
        if self._process is not None:
            self._process.join(timeout)
            if not self._process.is_alive():
                self._process = None

    def _debug_info(self) -> str:
        """The server's shared objects and their reference counts."""
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            return dispatch(conn, None, "debug_info")  # type: ignore[no-any-return]
        finally:
            conn.close()

    def _number_of_objects(self) -> int:
        """How many shared objects the server holds for clients."""
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            return dispatch(conn, None, "number_of_objects")  # type: ignore[no-any-return]
        finally:
            conn.close()

    def __enter__(self) -> BaseManager:
        if self._state.value == State.INITIAL:
            self.start()
        value = self._state.value
        if value == State.INITIAL:
            raise ProcessError("Unable to start server")
        if value == State.SHUTDOWN:
            raise ProcessError("Manager has shut down")
        if value != State.STARTED:
            raise ProcessError(f"Unknown state {value!r}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    @staticmethod
    def _finalize_manager(
        process: Any,
        address: Any,
        authkey: bytes,
        state: State,
        _Client: Callable[..., Any],
        shutdown_timeout: float,
    ) -> None:
        """Ask the server to stop; terminate, then kill it, if it does not in time."""
        if process.is_alive():
            util.info("sending shutdown message to manager")
            try:
                conn = _Client(address, authkey=authkey)
                try:
                    dispatch(conn, None, "shutdown")
                finally:
                    conn.close()
            except Exception:
                pass
            process.join(timeout=shutdown_timeout)
            if process.is_alive():
                util.info("manager still alive")
                process.terminate()
                process.join(timeout=shutdown_timeout)
                if process.is_alive():
                    util.info("manager still alive after terminate")
                    process.kill()
                    process.join()
        state.value = State.SHUTDOWN
        BaseProxy._address_to_local.pop(address, None)

    @property
    def address(self) -> Any:
        """Where the server listens (``None`` until started or given)."""
        return self._address

    @classmethod
    def register(  # noqa: PLR0917
        cls,
        typeid: str,
        callable: Callable[..., Any] | None = None,
        proxytype: Any = None,
        exposed: Sequence[str] | None = None,
        method_to_typeid: dict[str, str] | None = None,
        create_method: bool = True,
    ) -> None:
        """Make objects of ``typeid`` (built by ``callable`` in the server) available,
        with a method ``typeid(*args, **kwds)`` on the manager unless ``create_method``
        is false."""
        if "_registry" not in cls.__dict__:
            cls._registry = cls._registry.copy()
        if proxytype is None:
            proxytype = AutoProxy
        exposed = exposed or getattr(proxytype, "_exposed_", None)
        method_to_typeid = method_to_typeid or getattr(proxytype, "_method_to_typeid_", None)
        if method_to_typeid:
            for key, value in method_to_typeid.items():
                assert type(key) is str, f"{key!r} is not a string"
                assert type(value) is str, f"{value!r} is not a string"
        cls._registry[typeid] = (callable, exposed, method_to_typeid, proxytype)
        if create_method:
            setattr(cls, typeid, _creator(typeid, proxytype))


def _creator(typeid: str, proxytype: Any) -> Callable[..., Any]:
    """The manager method that creates a shared ``typeid`` and returns its proxy."""

    def create(self: BaseManager, /, *args: Any, **kwds: Any) -> Any:
        util.debug("requesting creation of a shared %r object", typeid)
        token, exposed = self._create(typeid, *args, **kwds)
        proxy = proxytype(
            token, self._serializer, manager=self, authkey=self._authkey, exposed=exposed
        )
        # `create` counted a reference for the caller; the proxy took its own.
        conn = self._Client(token.address, authkey=self._authkey)
        try:
            dispatch(conn, None, "decref", (token.id,))
        finally:
            conn.close()
        return proxy

    create.__name__ = create.__qualname__ = typeid
    return create


# --- what SyncManager's server holds --------------------------------------------------


class Namespace:
    """An object with attributes, shown by its public ones."""

    def __init__(self, /, **kwds: Any) -> None:
        self.__dict__.update(kwds)

    def __repr__(self) -> str:
        shown = sorted(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({', '.join(shown)})"


class Value:
    """A value with ``get``/``set`` and a ``value`` property (``lock`` is ignored)."""

    def __init__(self, typecode: Any, value: Any, lock: Any = True) -> None:
        self._typecode = typecode
        self._value = value

    def get(self) -> Any:
        return self._value

    def set(self, value: Any) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._typecode!r}, {self._value!r})"

    value = property(get, set)


def Array(typecode: str, sequence: Iterable[Any], lock: Any = True) -> array.array[Any]:
    """An ``array.array`` (``lock`` is ignored)."""
    return array.array(typecode, sequence)


def _pool(*args: Any, **kwds: Any) -> Any:
    from .pool import Pool

    return Pool(*args, **kwds)


class SyncManager(BaseManager):
    """A manager of queues, locks, events, conditions, barriers, pools and containers.

    ``ferroproc.Manager()`` returns a started one.
    """

    if TYPE_CHECKING:

        def Queue(self, maxsize: int = 0) -> Any: ...
        def JoinableQueue(self, maxsize: int = 0) -> Any: ...
        def Event(self) -> EventProxy: ...
        def Lock(self) -> AcquirerProxy: ...
        def RLock(self) -> AcquirerProxy: ...
        def Semaphore(self, value: int = 1) -> AcquirerProxy: ...
        def BoundedSemaphore(self, value: int = 1) -> AcquirerProxy: ...
        def Condition(self, lock: Any = None) -> ConditionProxy: ...
        def Barrier(
            self,
            parties: int,
            action: Callable[[], object] | None = None,
            timeout: float | None = None,
        ) -> BarrierProxy: ...
        def Pool(self, *args: Any, **kwds: Any) -> Any: ...
        def list(self, sequence: Iterable[Any] = ()) -> Any: ...
        def dict(self, *args: Any, **kwds: Any) -> Any: ...
        def Value(self, typecode: Any, value: Any, lock: Any = True) -> ValueProxy: ...
        def Array(self, typecode: str, sequence: Iterable[Any], lock: Any = True) -> Any: ...
        def Namespace(self, **kwds: Any) -> NamespaceProxy: ...


SyncManager.register("Queue", queue.Queue)
SyncManager.register("JoinableQueue", queue.Queue)
SyncManager.register("Event", threading.Event, EventProxy)
SyncManager.register("Lock", threading.Lock, AcquirerProxy)
SyncManager.register("RLock", threading.RLock, AcquirerProxy)
SyncManager.register("Semaphore", threading.Semaphore, AcquirerProxy)
SyncManager.register("BoundedSemaphore", threading.BoundedSemaphore, AcquirerProxy)
SyncManager.register("Condition", threading.Condition, ConditionProxy)
SyncManager.register("Barrier", threading.Barrier, BarrierProxy)
SyncManager.register("Pool", _pool, PoolProxy)
SyncManager.register("Array", Array, ArrayProxy)

# --- containers: the registrations that ferroproc._store's shared-memory types replace.
# Keep these four together; `_register_containers` is what swaps them.


def _register_containers(manager: type[BaseManager]) -> None:
    # In shared memory: a proxy works on the container directly, without the server.
    manager.register("list", _store.SharedList, ListProxy)
    manager.register("dict", _store.SharedDict, DictProxy)
    manager.register("Value", _store.SharedValue, ValueProxy)
    manager.register("Namespace", _store.SharedNamespace, NamespaceProxy)


_register_containers(SyncManager)
# --- end of the containers.

SyncManager.register("Iterator", proxytype=IteratorProxy, create_method=False)
SyncManager.register("AsyncResult", create_method=False)


# --- shared memory -------------------------------------------------------------------


class SharedMemoryManager(BaseManager):
    """A manager whose ``SharedMemory`` and ``ShareableList`` segments are unlinked when
    it shuts down (or its process exits)."""

    _Server = SharedMemoryServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        util.debug(f"{type(self).__name__} created by pid {os.getpid()}")

    def _track(self, name: str, release: Callable[[], None]) -> None:
        if self._state.value != State.STARTED:
            raise ValueError("the SharedMemoryManager has not been started")
        try:
            with self._Client(self._address, authkey=self._authkey) as conn:
                dispatch(conn, None, "track_segment", (name,))
        except BaseException:
            release()
            raise

    def SharedMemory(self, size: int) -> SharedMemory:
        """A new ``SharedMemory`` of ``size`` bytes, unlinked at shutdown."""
        from .shared_memory import SharedMemory

        if self._state.value != State.STARTED:
            raise ValueError("the SharedMemoryManager has not been started")
        segment = SharedMemory(None, create=True, size=size)
        self._track(segment.name, segment.unlink)
        return segment

    def ShareableList(self, sequence: Iterable[Any] | None) -> ShareableList:
        """A new ``ShareableList`` holding ``sequence``, unlinked at shutdown."""
        from .shared_memory import ShareableList

        if self._state.value != State.STARTED:
            raise ValueError("the SharedMemoryManager has not been started")
        shareable = ShareableList(sequence)
        self._track(shareable.shm.name, shareable.shm.unlink)
        return shareable
