"""Connections between processes: the stdlib's ``multiprocessing.connection`` API.

A :class:`Connection` sends framed messages over a descriptor: a socket pair for
``Pipe()``, an ``os.pipe`` for ``Pipe(duplex=False)``, a TCP or Unix socket for
:class:`Listener` and :func:`Client`. The frames (a big-endian length, then the
payload) and the HMAC challenge are the stdlib's, byte for byte, so either side of a
``Listener``/``Client`` pair may be the stdlib. Every byte goes through the Rust core::

    send(obj) ── ForkingPickler.dumps ──▶ send_bytes ── _core.send_bytes ──▶ descriptor
    recv()    ◀── ForkingPickler.loads ── recv_bytes ◀── _core.recv_bytes ◀── (spin, then
                                                         sleep in poll with the GIL released)

This module holds the public classes, the argument checks and error messages of the
stdlib, the authentication handshake and the pickling of connections for children.
"""

from __future__ import annotations

import os
import socket

from . import _core, reduction, util
from .context import AuthenticationError, BufferTooShort

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, NoReturn, SupportsIndex, Union

    from _typeshed import ReadableBuffer, WriteableBuffer

    Address = Union[str, bytes, tuple[str, int]]

__all__ = ["Client", "Listener", "Pipe", "wait"]

#: Kept from the stdlib, which uses it for Windows pipe buffers.
BUFSIZE = 8192
#: Kept from the stdlib: how long a Windows client retries a busy pipe.
CONNECTION_TIMEOUT = 20.0

default_family = "AF_UNIX"
families = ["AF_INET", "AF_UNIX"]

# A frame's length fits in 8 bytes; larger limits mean no limit.
_NO_LIMIT = 1 << 63


# --- addresses -----------------------------------------------------------------------


def _is_abstract_unix_address(address: object) -> bool:
    """Linux's abstract socket names start with a NUL byte and have no file to unlink."""
    if isinstance(address, bytes):
        return address[:1] == b"\0"
    if isinstance(address, str):
        return address[:1] == "\0"
    return False


def arbitrary_address(family: str) -> Address:
    """Return a free address of ``family``: an ephemeral loopback port for ``'AF_INET'``,
    a fresh path in this process's private temporary directory for ``'AF_UNIX'``."""
    if family == "AF_INET":
        return ("localhost", 0)
    if family == "AF_UNIX":
        name = f"listener-{os.urandom(8).hex()}"
        return os.path.join(util.get_temp_dir(), name)
    raise ValueError("unrecognized family")


def _validate_family(family: str) -> None:
    if family not in families:
        raise ValueError(f"Family {family} is not recognized.")


def address_type(address: object) -> str:
    """Return the family of ``address``: ``'AF_INET'`` for a ``(host, port)`` tuple,
    ``'AF_UNIX'`` for a path (or an abstract name), ``'AF_PIPE'`` for a Windows pipe name."""
    if type(address) is tuple:
        return "AF_INET"
    if type(address) is str and address.startswith("\\\\"):
        return "AF_PIPE"
    if type(address) is str or _is_abstract_unix_address(address):
        return "AF_UNIX"
    if address and not isinstance(address, (str, bytes)):
        raise TypeError(f"address type of {address!r} unrecognized")
    raise ValueError(f"address type of {address!r} unrecognized")


# --- connections ---------------------------------------------------------------------


class Connection:
    """One end of a connection: framed messages over a socket or pipe descriptor.

    ``send``/``recv`` carry picklable objects; ``send_bytes``/``recv_bytes`` raw bytes.
    The descriptor is closed by ``close()``, by leaving a ``with`` block, or when the
    object is collected.
    """

    _handle: int | None = None

    def __init__(self, handle: SupportsIndex, readable: bool = True, writable: bool = True):
        handle = handle.__index__()
        if handle < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        self._handle = handle
        self._readable = readable
        self._writable = writable
        # Whether the descriptor is a packet socket (what Pipe() makes): learnt on first
        # use, one system call per connection.
        self._packets: bool | None = None

    def _framing(self, handle: int) -> bool:
        packets = self._packets
        if packets is None:
            packets = self._packets = _core.is_packet_socket(handle)
        return packets

    def __del__(self) -> None:
        if self._handle is not None:
            self._close()

    # `os.close` bound at definition: module globals may be gone when __del__ runs at exit.
    def _close(self, _close: Any = os.close) -> None:
        _close(self._handle)

    def _check_closed(self) -> int:
        handle = self._handle
        if handle is None:
            raise OSError("handle is closed")
        return handle

    def _writable_handle(self) -> int:
        handle = self._check_closed()
        if not self._writable:
            raise OSError("connection is read-only")
        return handle

    def _readable_handle(self) -> int:
        handle = self._check_closed()
        if not self._readable:
            raise OSError("connection is write-only")
        return handle

    def _bad_message_length(self) -> NoReturn:
        # Where the next frame starts is unknown: stop reading, or close a read-only end.
        if self._writable:
            self._readable = False
        else:
            self.close()
        raise OSError("bad message length")

    @property
    def closed(self) -> bool:
        """True if the connection is closed."""
        return self._handle is None

    @property
    def readable(self) -> bool:
        """True if the connection is readable."""
        return self._readable

    @property
    def writable(self) -> bool:
        """True if the connection is writable."""
        return self._writable

    def fileno(self) -> int:
        """The connection's file descriptor."""
        return self._check_closed()

    def close(self) -> None:
        """Close the connection (a no-op if it is closed)."""
        if self._handle is not None:
            try:
                self._close()
            finally:
                self._handle = None

    def send_bytes(self, buf: ReadableBuffer, offset: int = 0, size: int | None = None) -> None:
        """Send the bytes of a bytes-like object (``buf[offset:offset + size]`` in bytes)
        as one message."""
        handle = self._handle
        if handle is None or not self._writable:
            handle = self._writable_handle()  # raises the stdlib's error
        packets = self._packets
        if packets is None:
            packets = self._framing(handle)
        if offset == 0 and size is None:
            _core.send_bytes(handle, buf, packets)
            return
        view = memoryview(buf)
        if view.itemsize > 1 or view.ndim > 1:
            view = view.cast("B")
        total = view.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if total < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = total - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > total:
            raise ValueError("buffer length < offset + size")
        _core.send_bytes(handle, view[offset : offset + size], packets)

    def send(self, obj: Any) -> None:
        """Send a picklable object (pickled by ``reduction.ForkingPickler``)."""
        handle = self._writable_handle()
        _core.send_bytes(handle, reduction.ForkingPickler.dumps(obj), self._framing(handle))

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message as ``bytes``. A message longer than ``maxlength`` raises
        ``OSError`` and leaves the connection unreadable (the stdlib's behaviour)."""
        handle = self._handle
        if handle is None or not self._readable:
            handle = self._readable_handle()  # raises the stdlib's error
        if maxlength is not None:
            if maxlength < 0:
                raise ValueError("negative maxlength")
            if maxlength >= _NO_LIMIT:
                maxlength = None
        packets = self._packets
        if packets is None:
            packets = self._framing(handle)
        data = _core.recv_bytes(handle, maxlength, None, packets)
        if data is None:
            self._bad_message_length()
        return data

    def recv_bytes_into(self, buf: WriteableBuffer, offset: int = 0) -> int:
        """Receive one message into a writable bytes-like object, starting at byte
        ``offset``; return its length. If it does not fit, raise ``BufferTooShort``
        carrying the whole message."""
        handle = self._readable_handle()
        with memoryview(buf) as view:
            if offset < 0:
                raise ValueError("negative offset")
            if offset > view.nbytes:
                raise ValueError("offset too large")
        received = _core.recv_bytes_into(handle, buf, offset, None, self._framing(handle))
        if received is None:
            self._bad_message_length()
        if isinstance(received, bytes):
            raise BufferTooShort(received)
        assert isinstance(received, int)
        return received

    def recv(self) -> Any:
        """Receive one picklable object."""
        handle = self._readable_handle()
        data = _core.recv_bytes(handle, None, None, self._framing(handle))
        if data is None:
            self._bad_message_length()
        return reduction.ForkingPickler.loads(data)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether there is anything to read, waiting up to ``timeout`` seconds for it
        (``None``: as long as it takes)."""
        handle = self._readable_handle()
        return _core.poll(handle, timeout)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: object, exc_value: object, exc_tb: object) -> None:
        self.close()


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Return the two ends of a new connection. With ``duplex=False`` the first end only
    receives and the second only sends (an ``os.pipe``); otherwise both do both (a
    socket pair)."""
    if duplex:
        # Packets, not a byte stream: a small message is then received in one system call
        # (see ferroproc_core::connection). Only ever read by ferroproc connections.
        first, second = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        first.setblocking(True)
        second.setblocking(True)
        return Connection(first.detach()), Connection(second.detach())
    read_fd, write_fd = os.pipe()
    return Connection(read_fd, writable=False), Connection(write_fd, readable=False)


# --- listeners and clients -----------------------------------------------------------


class SocketListener:
    """A bound, listening socket whose accepted connections become ``Connection``s.

    A Unix socket file is created owner-only and unlinked when the listener closes (or at
    exit).
    """

    def __init__(self, address: Address, family: str, backlog: int = 1) -> None:
        self._socket = socket.socket(getattr(socket, family))
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.setblocking(True)
            self._socket.bind(address)
            if isinstance(address, (str, bytes)) and not _is_abstract_unix_address(address):
                # Only this user may connect (DESIGN: sockets are owner-only).
                os.chmod(address, 0o600)
            self._socket.listen(backlog)
            self._address = self._socket.getsockname()
        except OSError:
            self._socket.close()
            raise
        self._family = family
        self._last_accepted: Any = None
        self._unlink: util.Finalize | None = None
        if family == "AF_UNIX" and not _is_abstract_unix_address(address):
            self._unlink = util.Finalize(self, os.unlink, args=(address,), exitpriority=0)

    def accept(self) -> Connection:
        """Wait for a client and return the connection to it."""
        sock, self._last_accepted = self._socket.accept()
        sock.setblocking(True)
        return Connection(sock.detach())

    def close(self) -> None:
        """Close the socket and remove its file, if any."""
        try:
            self._socket.close()
        finally:
            unlink, self._unlink = self._unlink, None
            if unlink is not None:
                unlink()


def SocketClient(address: Address) -> Connection:
    """Return a connection to the socket listening at ``address``."""
    family = address_type(address)
    with socket.socket(getattr(socket, family)) as sock:
        sock.setblocking(True)
        sock.connect(address)
        return Connection(sock.detach())


def _check_authkey(authkey: object) -> None:
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")


class Listener:
    """A socket listening for :func:`Client` connections.

    ``address`` defaults to a fresh one of ``family`` (``'AF_UNIX'`` unless the address
    says otherwise). With an ``authkey`` each accepted client must prove it knows the key
    (and the listener proves it too) before ``accept`` returns; a client that fails makes
    that ``accept`` raise ``AuthenticationError``, and the listener goes on serving.
    """

    def __init__(
        self,
        address: Address | None = None,
        family: str | None = None,
        backlog: int = 1,
        authkey: bytes | None = None,
    ) -> None:
        family = family or (address and address_type(address)) or default_family
        address = address or arbitrary_address(family)
        _validate_family(family)
        _check_authkey(authkey)
        self._listener: SocketListener | None = SocketListener(address, family, backlog)
        self._authkey = authkey

    def accept(self) -> Connection:
        """Wait for a client and return the (authenticated) connection to it."""
        if self._listener is None:
            raise OSError("listener is closed")
        conn = self._listener.accept()
        if self._authkey:
            try:
                deliver_challenge(conn, self._authkey)
                answer_challenge(conn, self._authkey)
            except BaseException:
                conn.close()
                raise
        return conn

    def close(self) -> None:
        """Stop listening (and remove a Unix socket's file)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    @property
    def address(self) -> Any:
        """The address the listener is bound to."""
        assert self._listener is not None
        return self._listener._address

    @property
    def last_accepted(self) -> Any:
        """The address of the last client accepted (``None`` before the first)."""
        assert self._listener is not None
        return self._listener._last_accepted

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, exc_type: object, exc_value: object, exc_tb: object) -> None:
        self.close()


def Client(address: Address, family: str | None = None, authkey: bytes | None = None) -> Connection:
    """Return a connection to the :class:`Listener` at ``address``, authenticated with
    ``authkey`` if one is given."""
    family = family or address_type(address)
    _validate_family(family)
    _check_authkey(authkey)
    conn = SocketClient(address)
    if authkey is not None:
        try:
            answer_challenge(conn, authkey)
            deliver_challenge(conn, authkey)
        except BaseException:
            conn.close()
            raise
    return conn


# --- authentication ------------------------------------------------------------------
# The stdlib's handshake (3.11): the challenger sends CHALLENGE + 20 random bytes, the
# other side answers with their HMAC-MD5 under the shared key, and gets WELCOME or
# FAILURE back. Each side challenges the other in turn.

MESSAGE_LENGTH = 20

CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"

# Handshake messages are short: a peer sending more is not following the protocol.
_HANDSHAKE_MAXLENGTH = 256


def _require_bytes_authkey(authkey: object) -> None:
    if not isinstance(authkey, bytes):
        raise ValueError(f"Authkey must be bytes, not {type(authkey)!s}")


def deliver_challenge(connection: Connection, authkey: bytes) -> None:
    """Challenge the peer to prove it knows ``authkey``; raise ``AuthenticationError``
    (after telling the peer) if it does not."""
    import hmac

    _require_bytes_authkey(authkey)
    nonce = os.urandom(MESSAGE_LENGTH)
    connection.send_bytes(CHALLENGE + nonce)
    expected = hmac.new(authkey, nonce, "md5").digest()
    response = connection.recv_bytes(_HANDSHAKE_MAXLENGTH)
    if hmac.compare_digest(response, expected):
        connection.send_bytes(WELCOME)
    else:
        connection.send_bytes(FAILURE)
        raise AuthenticationError("digest received was wrong")


def answer_challenge(connection: Connection, authkey: bytes) -> None:
    """Answer the peer's challenge with ``authkey``; raise ``AuthenticationError`` if the
    peer rejects the answer."""
    import hmac

    _require_bytes_authkey(authkey)
    challenge = connection.recv_bytes(_HANDSHAKE_MAXLENGTH)
    if not challenge.startswith(CHALLENGE):
        raise AuthenticationError(f"protocol error: expected a challenge, got {challenge!r}")
    digest = hmac.new(authkey, challenge[len(CHALLENGE) :], "md5").digest()
    connection.send_bytes(digest)
    if connection.recv_bytes(_HANDSHAKE_MAXLENGTH) != WELCOME:
        raise AuthenticationError("digest sent was rejected")


# --- waiting on many objects ---------------------------------------------------------


def _fileno_of(obj: Any) -> int:
    if isinstance(obj, int):
        fd = obj
    else:
        try:
            fd = int(obj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {obj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def wait(object_list: Iterable[Any], timeout: float | None = None) -> list[Any]:
    """Wait until at least one object in ``object_list`` is ready to read (or ``timeout``
    seconds pass; ``None``: no limit) and return those that are, in the list's order.

    An object is a ``Connection``, a socket, a process's ``sentinel`` or anything else
    with a ``fileno()``, or a descriptor number. A connection is ready when it has a
    message or its peer is gone; a sentinel when its process has ended.
    """
    objects = list(object_list)
    fds: list[int] = []
    seen: set[int] = set()
    for obj in objects:
        fd = _fileno_of(obj)
        if fd in seen:
            raise KeyError(f"{obj!r} (FD {fd}) is already registered")
        seen.add(fd)
        fds.append(fd)
    return [objects[index] for index in _core.wait(fds, timeout)]


# --- pickling for children -----------------------------------------------------------


def reduce_connection(conn: Connection) -> tuple[Any, ...]:
    """Pickle a connection for a child being started: its descriptor travels with the
    child's start-up (``reduction.DupFd``)."""
    df = reduction.DupFd(conn.fileno())
    return rebuild_connection, (df, conn.readable, conn.writable)


def rebuild_connection(df: Any, readable: bool, writable: bool) -> Connection:
    """Unpickle a connection in the child (the counterpart of :func:`reduce_connection`)."""
    return Connection(df.detach(), readable, writable)


reduction.register(Connection, reduce_connection)
