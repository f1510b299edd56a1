"""The manager's server and its wire: what ``ferroproc.managers`` builds on.

::

    client process                                   server process (ctx.Process)
    ──────────────                                   ──────────────────────────────
    manager._create ─ Client ─ handshake ─┐          Listener (Unix socket, or TCP)
    proxy._incref / _decref (one-shot) ───┤            │ accepter thread
    proxy._callmethod ── per-thread conn ─┴────────▶   ├─ one thread per connection:
                                                       │    handshake, then one request
        request: (ident, name, args, kwds)             │    ('create', 'incref', ...) or
        reply:   (kind, value)                         │    'accept_connection': a loop of
                                                       │    method calls on shared objects
                                                       └─ id_to_obj / id_to_refcount

Replies are ``('#RETURN', value)``, ``('#ERROR', (exception, traceback text))``,
``('#TRACEBACK', text)``, ``('#UNSERIALIZABLE', text)`` or ``('#PROXY', (exposed,
token))`` for a method whose result becomes a shared object of its own
(``method_to_typeid``). The server keeps the objects and their reference counts; a
proxy's creation and finalisation add and remove one reference each, on a connection of
their own so that a finaliser run by the garbage collector never interleaves with a call
in progress on the thread's connection.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback

from . import connection, process, reduction, util

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = [
    "RemoteError",
    "Server",
    "SharedMemoryServer",
    "State",
    "Token",
    "all_methods",
    "convert_to_error",
    "dispatch",
    "listener_client",
    "public_methods",
]


# --- tokens and errors ---------------------------------------------------------------


class Token:
    """Names a shared object: its type id, the address of its manager and its id there."""

    __slots__ = ("address", "id", "typeid")

    def __init__(self, typeid: str, address: Any, id: str) -> None:
        self.typeid = typeid
        self.address = address
        self.id = id

    def __getstate__(self) -> tuple[str, Any, str]:
        return (self.typeid, self.address, self.id)

    def __setstate__(self, state: tuple[str, Any, str]) -> None:
        self.typeid, self.address, self.id = state

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(typeid={self.typeid!r}, address={self.address!r}, id={self.id!r})"


class RemoteError(Exception):
    """An error in the manager's server; ``args[0]`` is the server's traceback."""

    def __str__(self) -> str:
        rule = "-" * 75
        return f"\n{rule}\n{self.args[0]}{rule}"


class RemoteTraceback(Exception):
    """The server-side traceback of an exception a shared object's method raised,
    attached to that exception as its ``__cause__``."""

    def __str__(self) -> str:
        return str(self.args[0])


def convert_to_error(kind: str, result: Any) -> BaseException:  # noqa: PLR0911
    """The exception a non-``#RETURN`` reply stands for."""
    if kind == "#ERROR":
        if isinstance(result, BaseException):
            return result
        exc, text = result
        if isinstance(exc, BaseException) and isinstance(text, str):
            exc.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
            return exc
        return RemoteError(str(result))
    if kind in ("#TRACEBACK", "#UNSERIALIZABLE"):
        if not isinstance(result, str):
            return TypeError(f"Result {result!r} (kind '{kind}') type is {type(result)}, not str")
        if kind == "#UNSERIALIZABLE":
            return RemoteError(f"Unserializable message: {result}\n")
        return RemoteError(result)
    return ValueError(f"Unrecognized message type {kind!r}")


def dispatch(
    c: Any,
    id: str | None,
    methodname: str,
    args: tuple[Any, ...] = (),
    kwds: dict[str, Any] | None = None,
) -> Any:
    """Send one request on ``c`` and return the result (or raise what the server sent)."""
    c.send((id, methodname, args, kwds or {}))
    kind, result = c.recv()
    if kind == "#RETURN":
        return result
    raise convert_to_error(kind, result)


# --- serializers ---------------------------------------------------------------------


class _XmlConnection:
    """A connection whose messages are XML-RPC documents instead of pickles."""

    def __init__(self, conn: connection.Connection) -> None:
        self._conn = conn

    def send(self, obj: Any) -> None:
        import xmlrpc.client

        self._conn.send_bytes(xmlrpc.client.dumps((obj,), None, None, None, True).encode())

    def recv(self) -> Any:
        import xmlrpc.client

        (obj,), _method = xmlrpc.client.loads(self._conn.recv_bytes().decode(), True)
        return obj

    def send_bytes(self, buf: bytes) -> None:
        self._conn.send_bytes(buf)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        return self._conn.recv_bytes(maxlength)

    def poll(self, timeout: float | None = 0.0) -> bool:
        return self._conn.poll(timeout)

    def fileno(self) -> int:
        return self._conn.fileno()

    def close(self) -> None:
        self._conn.close()

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def __enter__(self) -> _XmlConnection:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class XmlListener(connection.Listener):
    """A ``Listener`` whose connections speak XML-RPC (the ``'xmlrpclib'`` serializer)."""

    def accept(self) -> Any:
        return _XmlConnection(super().accept())


def XmlClient(address: Any, family: str | None = None, authkey: bytes | None = None) -> Any:
    """A ``Client`` connection that speaks XML-RPC (the ``'xmlrpclib'`` serializer)."""
    return _XmlConnection(connection.Client(address, family, authkey))


#: serializer name -> (Listener, Client), as the stdlib's table.
listener_client: dict[str, tuple[Any, Callable[..., Any]]] = {
    "pickle": (connection.Listener, connection.Client),
    "xmlrpclib": (XmlListener, XmlClient),
}


# --- helpers -------------------------------------------------------------------------


def _as_list(view: Any) -> tuple[type[list[Any]], tuple[list[Any]]]:
    return list, (list(view),)


# A dict's keys, values and items views travel as lists, so `DictProxy.keys()` works.
_view_types: tuple[type[Any], ...] = (type({}.keys()), type({}.values()), type({}.items()))
for _view_type in _view_types:
    reduction.register(_view_type, _as_list)


def all_methods(obj: object) -> list[str]:
    """The names of ``obj``'s callable attributes."""
    return [name for name in dir(obj) if callable(getattr(obj, name, None))]


def public_methods(obj: object) -> list[str]:
    """The names of ``obj``'s callable attributes that do not start with ``_``."""
    return [name for name in all_methods(obj) if name[0] != "_"]


class State:
    """The life-cycle state of a manager, shared with its finaliser."""

    __slots__ = ("value",)
    INITIAL = 0
    STARTED = 1
    SHUTDOWN = 2

    def __init__(self) -> None:
        self.value = State.INITIAL


def _format_exc() -> str:
    return "".join(traceback.format_exc())


# --- the server ----------------------------------------------------------------------

# An entry of `id_to_obj`: the object, the method names clients may call, and which
# methods return shared objects of which type id.
if TYPE_CHECKING:
    _Entry = tuple[Any, frozenset[str], dict[str, str] | None]


class Server:
    """Serves the shared objects of one manager, each client connection in a thread."""

    public: tuple[str, ...] = (
        "shutdown",
        "create",
        "accept_connection",
        "get_methods",
        "debug_info",
        "number_of_objects",
        "dummy",
        "incref",
        "decref",
        "pin",
    )

    def __init__(
        self,
        registry: dict[str, tuple[Any, ...]],
        address: Any,
        authkey: bytes,
        serializer: str,
    ) -> None:
        if not isinstance(authkey, bytes):
            raise TypeError(f"Authkey {authkey!r} is type {type(authkey)!s}, not bytes")
        self.registry = registry
        self.authkey = process.AuthenticationString(authkey)
        listener_type, _client = listener_client[serializer]
        # Clients authenticate in their own thread, so a slow one cannot stall `accept`.
        self.listener = listener_type(address=address, backlog=16)
        self.address = self.listener.address
        self.id_to_obj: dict[str, _Entry] = {}
        self.id_to_refcount: dict[str, int] = {}
        self.id_to_local_proxy_obj: dict[str, _Entry] = {}
        # Objects whose proxy was pickled into a shared-memory container (ferroproc._store):
        # bytes the server cannot count may refer to them, so they stay until shutdown.
        self.pinned: set[str] = set()
        # Those of them no proxy refers to right now.
        self.id_to_pinned: dict[str, _Entry] = {}
        self.mutex = threading.Lock()
        self.stop_event = threading.Event()

    # -- the loops --

    def serve_forever(self) -> None:
        """Serve until ``shutdown`` (or Ctrl-C), then exit the process with ``sys.exit(0)``."""
        self.stop_event = threading.Event()
        process.current_process()._manager_server = self  # type: ignore[attr-defined]
        try:
            accepter = threading.Thread(target=self.accepter, name="manager-accepter", daemon=True)
            accepter.start()
            with contextlib.suppress(KeyboardInterrupt, SystemExit):
                self.stop_event.wait()
        finally:
            self._stopped()
            if sys.stdout is not sys.__stdout__:
                util.debug("resetting stdout, stderr")
                sys.stdout = sys.__stdout__
                sys.stderr = sys.__stderr__
            sys.exit(0)

    def _stopped(self) -> None:
        """Called once the server stops serving: releases what it holds."""
        try:
            self.listener.close()
        except Exception as exc:
            util.debug("closing the manager's listener failed: %r", exc)

    def accepter(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn = self.listener.accept()
            except OSError:
                if self.listener._listener is None:
                    return
                continue
            thread = threading.Thread(target=self.handle_request, args=(conn,), daemon=True)
            thread.start()

    def handle_request(self, conn: Any) -> None:
        """Authenticate a new connection and answer its first request."""
        try:
            self._handle_request(conn)
        except SystemExit:
            pass
        finally:
            conn.close()

    def _handle_request(self, conn: Any) -> None:
        request = None
        try:
            connection.deliver_challenge(conn, self.authkey)
            connection.answer_challenge(conn, self.authkey)
            request = conn.recv()
            _ident, funcname, args, kwds = request
            if funcname not in self.public:
                raise AssertionError(f"{funcname!r} unrecognized")
            func = getattr(self, funcname)
        except Exception:
            msg: tuple[str, Any] = ("#TRACEBACK", _format_exc())
        else:
            try:
                result = func(conn, *args, **kwds)
            except Exception:
                msg = ("#TRACEBACK", _format_exc())
            else:
                msg = ("#RETURN", result)
        try:
            conn.send(msg)
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.send(("#TRACEBACK", _format_exc()))
            util.info("Failure to send message: %r", msg)
            util.info(" ... request was %r", request)
            util.info(" ... exception was %r", exc)

    def _lookup(self, ident: str) -> _Entry:
        try:
            return self.id_to_obj[ident]
        except KeyError:
            try:
                return self.id_to_local_proxy_obj[ident]
            except KeyError:
                pass
            try:
                return self.id_to_pinned[ident]
            except KeyError:
                raise KeyError(ident) from None

    def serve_client(self, conn: Any) -> None:
        """Answer method calls on shared objects from one client thread until it leaves."""
        util.debug("starting server thread to service %r", threading.current_thread().name)
        while not self.stop_event.is_set():
            methodname = obj = None
            try:
                request = conn.recv()
            except (EOFError, OSError):
                util.debug("got EOF -- exiting thread serving %r", threading.current_thread().name)
                return
            try:
                ident, methodname, args, kwds = request
                obj, exposed, gettypeid = self._lookup(ident)
                if methodname not in exposed:
                    raise AttributeError(
                        f"method {methodname!r} of {type(obj)!r} object is not in "
                        f"exposed={exposed!r}"
                    )
                function = getattr(obj, methodname)
                try:
                    res = function(*args, **kwds)
                except Exception as exc:
                    msg: tuple[str, Any] = ("#ERROR", (exc, _format_exc()))
                else:
                    typeid = gettypeid.get(methodname) if gettypeid else None
                    if typeid:
                        rident, rexposed = self.create(conn, typeid, res)
                        msg = ("#PROXY", (rexposed, Token(typeid, self.address, rident)))
                    else:
                        msg = ("#RETURN", res)
            except AttributeError:
                fallback = self.fallback_mapping.get(methodname) if methodname else None
                if fallback is None:
                    msg = ("#TRACEBACK", _format_exc())
                else:
                    try:
                        msg = ("#RETURN", fallback(self, conn, ident, obj, *args, **kwds))
                    except Exception:
                        msg = ("#TRACEBACK", _format_exc())
            except Exception:
                msg = ("#TRACEBACK", _format_exc())
            try:
                try:
                    conn.send(msg)
                except (EOFError, OSError):
                    raise
                except Exception:
                    conn.send(("#UNSERIALIZABLE", _format_exc()))
            except Exception as exc:
                util.info("exception in thread serving %r", threading.current_thread().name)
                util.info(" ... message was %r", msg)
                util.info(" ... exception was %r", exc)
                return

    # -- fallbacks for methods a shared object does not expose --

    def fallback_getvalue(self, conn: Any, ident: str, obj: Any) -> Any:
        return obj

    def fallback_str(self, conn: Any, ident: str, obj: Any) -> str:
        return str(obj)

    def fallback_repr(self, conn: Any, ident: str, obj: Any) -> str:
        return repr(obj)

    fallback_mapping: dict[str, Callable[..., Any]] = {  # noqa: RUF012
        "__str__": fallback_str,
        "__repr__": fallback_repr,
        "#GETVALUE": fallback_getvalue,
    }

    # -- requests on a fresh connection --

    def dummy(self, conn: Any) -> None:
        pass

    def debug_info(self, conn: Any) -> str:
        """One line per shared object: its id, reference count and value."""
        with self.mutex:
            lines = []
            for ident in sorted(self.id_to_refcount):
                lines.append(
                    f"  {ident}:       refcount={self.id_to_refcount[ident]}\n"
                    f"    {str(self.id_to_obj[ident][0])[:75]}"
                )
            return "\n".join(lines)

    def number_of_objects(self, conn: Any) -> int:
        """How many shared objects clients still hold."""
        return len(self.id_to_refcount)

    def shutdown(self, conn: Any) -> None:
        """Reply, then stop serving."""
        try:
            util.debug("manager received shutdown message")
            conn.send(("#RETURN", None))
        except Exception:
            traceback.print_exc()
        finally:
            self.stop_event.set()

    def create(
        self, conn: Any, typeid: str, /, *args: Any, **kwds: Any
    ) -> tuple[str, tuple[str, ...]]:
        """Create a shared object of ``typeid``; return its id and exposed methods."""
        with self.mutex:
            factory, exposed, method_to_typeid, _proxytype = self.registry[typeid]
            if factory is None:
                if kwds or len(args) != 1:
                    raise ValueError("Without callable, must have one non-keyword argument")
                obj = args[0]
            else:
                obj = factory(*args, **kwds)
            if exposed is None:
                exposed = public_methods(obj)
            if method_to_typeid is not None:
                if not isinstance(method_to_typeid, dict):
                    raise TypeError(
                        f"Method_to_typeid {method_to_typeid!r}: type "
                        f"{type(method_to_typeid)!s}, not dict"
                    )
                exposed = list(exposed) + list(method_to_typeid)
            # A string: XML-RPC integers are 32-bit.
            ident = f"{id(obj):x}"
            util.debug("%r callable returned object with id %r", typeid, ident)
            self.id_to_obj[ident] = (obj, frozenset(exposed), method_to_typeid)
            self.id_to_refcount.setdefault(ident, 0)
        self.incref(conn, ident)
        return ident, tuple(exposed)

    def get_methods(self, conn: Any, token: Token) -> tuple[str, ...]:
        """The exposed methods of the object ``token`` names."""
        return tuple(self.id_to_obj[token.id][1])

    def accept_connection(self, conn: Any, name: str) -> None:
        """Turn this connection into a client's long-lived one."""
        threading.current_thread().name = name
        conn.send(("#RETURN", None))
        self.serve_client(conn)

    def incref(self, conn: Any, ident: str) -> None:
        with self.mutex:
            if ident in self.id_to_refcount:
                self.id_to_refcount[ident] += 1
            elif ident in self.id_to_local_proxy_obj:
                # Only a proxy held inside the server still refers to the object: a
                # client that got it from there brings it back under tracking.
                self.id_to_refcount[ident] = 1
                self.id_to_obj[ident] = self.id_to_local_proxy_obj[ident]
                util.debug("Server re-enabled tracking & INCREF %r", ident)
            elif ident in self.id_to_pinned:
                self.id_to_refcount[ident] = 1
                self.id_to_obj[ident] = self.id_to_pinned.pop(ident)
                util.debug("Server revived pinned %r", ident)
            else:
                raise KeyError(ident)

    def pin(self, conn: Any, ident: str) -> None:
        """Keep ``ident`` until shutdown, whatever its reference count."""
        with self.mutex:
            if ident not in self.id_to_obj and ident not in self.id_to_pinned:
                raise KeyError(ident)
            self.pinned.add(ident)

    def decref(self, conn: Any, ident: str) -> None:
        if ident not in self.id_to_refcount and ident in self.id_to_local_proxy_obj:
            util.debug("Server DECREF skipping %r", ident)
            return
        with self.mutex:
            count = self.id_to_refcount[ident]
            if count <= 0:
                raise AssertionError(
                    f"Id {ident!s} ({self.id_to_obj[ident]!r}) has refcount {count:n}, not 1+"
                )
            if count == 1:
                del self.id_to_refcount[ident]
                dead: _Entry | None = self.id_to_obj[ident]
                if dead is not None and ident in self.pinned:
                    self.id_to_pinned[ident] = dead
                    del self.id_to_obj[ident]
                    return
                # Released outside the mutex: the object may hold proxies of other
                # objects of this server, whose finalisers call back into `decref`.
                self.id_to_obj[ident] = (None, frozenset(), None)
            else:
                self.id_to_refcount[ident] = count - 1
                dead = None
        if dead is not None:
            util.debug("disposing of obj with id %r", ident)
            del dead
            with self.mutex:
                if ident not in self.id_to_refcount:
                    self.id_to_obj.pop(ident, None)


def run_server(  # noqa: PLR0917
    server_type: type[Server],
    registry: dict[str, tuple[Any, ...]],
    address: Any,
    authkey: bytes,
    serializer: str,
    writer: connection.Connection,
    initializer: Callable[..., object] | None,
    initargs: Iterable[Any],
) -> None:
    """The body of a manager's server process."""
    # Ctrl-C in a terminal reaches the whole process group: the parent shuts the server
    # down through `shutdown()`; the server itself must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    server = server_type(registry, address, authkey, serializer)
    writer.send(server.address)
    writer.close()
    _watch_parent(server)
    util.info("manager serving at %r", server.address)
    server.serve_forever()


def _watch_parent(server: Server) -> None:
    """Stop the server when the process that started it exits, even by SIGKILL."""
    parent = process.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        util.info("manager's parent exited: shutting down")
        server.stop_event.set()
        # The main thread exits cleanly unless something holds it up; do not outlive the
        # parent by more than a grace period in any case.
        threading.Event().wait(10.0)
        os._exit(1)

    threading.Thread(target=watch, name="manager-parent-watch", daemon=True).start()


# --- shared memory -------------------------------------------------------------------


class _SharedMemoryTracker:
    """The names of the shared memory segments a ``SharedMemoryManager`` created."""

    def __init__(self, name: str, segment_names: Iterable[str] = ()) -> None:
        self.shared_memory_context_name = name
        self.segment_names = list(segment_names)

    def register_segment(self, segment_name: str) -> None:
        util.debug("Register segment %r in pid %d", segment_name, os.getpid())
        self.segment_names.append(segment_name)

    def destroy_segment(self, segment_name: str) -> None:
        util.debug("Destroy segment %r in pid %d", segment_name, os.getpid())
        self.segment_names.remove(segment_name)
        _unlink_segment(segment_name)

    def unlink(self) -> None:
        for segment_name in self.segment_names[:]:
            self.destroy_segment(segment_name)

    def __del__(self) -> None:
        util.debug("Call %s.__del__ in %d", type(self).__name__, os.getpid())
        self.unlink()

    def __getstate__(self) -> tuple[str, list[str]]:
        return (self.shared_memory_context_name, self.segment_names)

    def __setstate__(self, state: tuple[str, list[str]]) -> None:
        self.__init__(*state)  # type: ignore[misc]


def _unlink_segment(name: str) -> None:
    from . import shared_memory

    try:
        segment = shared_memory.SharedMemory(name)
    except FileNotFoundError:
        return
    try:
        segment.unlink()
    except FileNotFoundError:
        pass
    finally:
        segment.close()


class SharedMemoryServer(Server):
    """A server that also tracks shared memory segments and unlinks them when it stops."""

    public = (*Server.public, "track_segment", "release_segment", "list_segments")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        address = self.address
        if isinstance(address, bytes):
            address = os.fsdecode(address)
        self.shared_memory_context = _SharedMemoryTracker(f"shm_{address}_{os.getpid()}")
        util.debug("SharedMemoryServer started by pid %d", os.getpid())

    def create(
        self, conn: Any, typeid: str, /, *args: Any, **kwargs: Any
    ) -> tuple[str, tuple[str, ...]]:
        """As ``Server.create``; a type whose proxy asks for it gets the segment tracker."""
        if hasattr(self.registry[typeid][-1], "_shared_memory_proxy"):
            kwargs["shared_memory_context"] = self.shared_memory_context
        return super().create(conn, typeid, *args, **kwargs)

    def shutdown(self, conn: Any) -> None:
        """Unlink every tracked segment, then stop."""
        self.shared_memory_context.unlink()
        super().shutdown(conn)

    def _stopped(self) -> None:
        # However the server stops (shutdown, its parent's death, Ctrl-C under
        # `serve_forever`), no segment it tracks stays in /dev/shm.
        try:
            self.shared_memory_context.unlink()
        finally:
            super()._stopped()

    def track_segment(self, conn: Any, segment_name: str) -> None:
        """Add ``segment_name`` to the segments unlinked at shutdown."""
        self.shared_memory_context.register_segment(segment_name)

    def release_segment(self, conn: Any, segment_name: str) -> None:
        """Unlink ``segment_name`` now and stop tracking it."""
        self.shared_memory_context.destroy_segment(segment_name)

    def list_segments(self, conn: Any) -> list[str]:
        """The names of the segments tracked."""
        return self.shared_memory_context.segment_names
