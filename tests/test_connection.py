"""``Pipe``, ``Connection`` and ``connection.wait``: the stdlib's behaviour and errors."""

from __future__ import annotations

import array
import importlib
import os
import pickle
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import _connection_targets as targets
from _support import DEADLINE, MODULE_NAME, mp

connection = importlib.import_module(f"{MODULE_NAME}.connection")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def duplex() -> Iterator[tuple[Any, Any]]:
    a, b = mp.Pipe()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def simplex() -> Iterator[tuple[Any, Any]]:
    r, w = mp.Pipe(duplex=False)
    yield r, w
    r.close()
    w.close()


# --- sending and receiving -----------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [None, 0, -(2**70), 3.5, "text", b"bytes", [1, (2, 3)], {"k": {1, 2}}, b"x" * 100_000],
)
def test_send_recv_objects_both_ways(duplex: tuple[Any, Any], obj: Any) -> None:
    a, b = duplex
    a.send(obj)
    assert b.recv() == obj
    b.send(obj)
    assert a.recv() == obj


def test_messages_keep_their_boundaries_and_order(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    messages = [b"", b"a", b"bc" * 1000, b"", b"d"]
    for message in messages:
        a.send_bytes(message)
    assert [b.recv_bytes() for _ in messages] == messages


def test_simplex_pipe(simplex: tuple[Any, Any]) -> None:
    r, w = simplex
    assert (r.readable, r.writable, w.readable, w.writable) == (True, False, False, True)
    w.send_bytes(b"one way")
    assert r.recv_bytes() == b"one way"
    with pytest.raises(OSError, match="connection is read-only"):
        r.send(1)
    with pytest.raises(OSError, match="connection is read-only"):
        r.send_bytes(b"x")
    with pytest.raises(OSError, match="connection is write-only"):
        w.recv()
    with pytest.raises(OSError, match="connection is write-only"):
        w.recv_bytes()
    with pytest.raises(OSError, match="connection is write-only"):
        w.poll()


def test_large_message_through_a_thread(duplex: tuple[Any, Any]) -> None:
    # Larger than any socket buffer: the sender must wait for the reader.
    a, b = duplex
    payload = os.urandom(8 * 1024 * 1024 + 3)
    sender = threading.Thread(target=a.send_bytes, args=(payload,))
    sender.start()
    try:
        assert b.recv_bytes() == payload
    finally:
        sender.join()


def test_large_message_through_a_simplex_pipe(simplex: tuple[Any, Any]) -> None:
    r, w = simplex
    payload = os.urandom(3 * 1024 * 1024)
    sender = threading.Thread(target=w.send_bytes, args=(payload,))
    sender.start()
    try:
        assert r.recv_bytes() == payload
    finally:
        sender.join()


def test_send_bytes_takes_any_buffer(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    a.send_bytes(bytearray(b"bytearray"))
    assert b.recv_bytes() == b"bytearray"
    a.send_bytes(memoryview(b"memoryview"))
    assert b.recv_bytes() == b"memoryview"
    ints = array.array("i", [1, 2, 3])
    a.send_bytes(ints)
    assert b.recv_bytes() == ints.tobytes()
    with pytest.raises(TypeError):
        a.send_bytes("not bytes")


def test_send_bytes_offset_and_size(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    a.send_bytes(b"0123456789", 2)
    assert b.recv_bytes() == b"23456789"
    a.send_bytes(b"0123456789", 2, 3)
    assert b.recv_bytes() == b"234"
    a.send_bytes(b"0123456789", 10)
    assert b.recv_bytes() == b""
    # Offsets count bytes, whatever the item size.
    ints = array.array("i", [1, 2, 3])
    a.send_bytes(ints, ints.itemsize, ints.itemsize)
    assert b.recv_bytes() == array.array("i", [2]).tobytes()


@pytest.mark.parametrize(
    ("offset", "size", "message"),
    [
        (-1, None, "offset is negative"),
        (11, None, "buffer length < offset"),
        (0, -1, "size is negative"),
        (5, 6, r"buffer length < offset \+ size"),
    ],
)
def test_send_bytes_bad_offset_or_size(
    duplex: tuple[Any, Any], offset: int, size: int | None, message: str
) -> None:
    a, b = duplex
    with pytest.raises(ValueError, match=message):
        a.send_bytes(b"0123456789", offset, size)
    # Nothing was sent: the connection is in step.
    a.send_bytes(b"after")
    assert b.recv_bytes() == b"after"


def test_recv_bytes_maxlength(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    a.send_bytes(b"12345")
    assert b.recv_bytes(5) == b"12345"
    with pytest.raises(ValueError, match="negative maxlength"):
        b.recv_bytes(-1)
    a.send_bytes(b"123456")
    with pytest.raises(OSError, match="bad message length"):
        b.recv_bytes(5)
    # A duplex connection stops reading (the stream is out of step) but may still send.
    assert not b.readable
    assert not b.closed
    b.send_bytes(b"still sends")
    assert a.recv_bytes() == b"still sends"


def test_recv_bytes_maxlength_on_a_read_only_end_closes_it(simplex: tuple[Any, Any]) -> None:
    r, w = simplex
    w.send_bytes(b"123456")
    with pytest.raises(OSError, match="bad message length"):
        r.recv_bytes(5)
    assert r.closed


def test_recv_bytes_into(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    buf = bytearray(10)
    a.send_bytes(b"abc")
    assert b.recv_bytes_into(buf) == 3
    assert buf[:3] == b"abc"
    a.send_bytes(b"xyz")
    assert b.recv_bytes_into(buf, 7) == 3
    assert buf == bytearray(b"abc\0\0\0\0xyz")
    a.send_bytes(b"")
    assert b.recv_bytes_into(buf, 10) == 0


def test_recv_bytes_into_an_array_counts_bytes(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    ints = array.array("i", [0, 0, 0, 0])
    a.send_bytes(array.array("i", [7, 8]))
    assert b.recv_bytes_into(ints, ints.itemsize) == 2 * ints.itemsize
    assert ints.tolist() == [0, 7, 8, 0]


def test_recv_bytes_into_too_short_raises_with_the_whole_message(
    duplex: tuple[Any, Any],
) -> None:
    a, b = duplex
    buf = bytearray(4)
    a.send_bytes(b"longer than four")
    with pytest.raises(mp.BufferTooShort) as info:
        b.recv_bytes_into(buf)
    assert info.value.args[0] == b"longer than four"
    a.send_bytes(b"abc")
    with pytest.raises(mp.BufferTooShort):
        b.recv_bytes_into(buf, 2)
    # The connection is still in step.
    a.send_bytes(b"ok")
    assert b.recv_bytes_into(buf) == 2


def test_recv_bytes_into_bad_offset(duplex: tuple[Any, Any]) -> None:
    _, b = duplex
    buf = bytearray(4)
    with pytest.raises(ValueError, match="negative offset"):
        b.recv_bytes_into(buf, -1)
    with pytest.raises(ValueError, match="offset too large"):
        b.recv_bytes_into(buf, 5)


def test_send_bytes_recv_as_object_and_back(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    a.send_bytes(pickle.dumps({"x": 1}))
    assert b.recv() == {"x": 1}
    a.send([1, 2])
    assert pickle.loads(b.recv_bytes()) == [1, 2]


def test_unpicklable_object_fails_at_send_and_the_connection_goes_on(
    duplex: tuple[Any, Any],
) -> None:
    a, b = duplex
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        a.send(lambda: None)
    with pytest.raises((pickle.PicklingError, TypeError)):
        a.send(threading.Lock())
    a.send("next")
    assert b.recv() == "next"
    assert not b.poll()


# --- poll ----------------------------------------------------------------------------


def test_poll(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    assert b.poll() is False
    assert b.poll(0.01) is False
    assert b.poll(-1) is False
    a.send_bytes(b"x")
    assert b.poll() is True
    assert b.poll(None) is True
    assert b.recv_bytes() == b"x"
    assert b.poll(0) is False


def test_poll_waits_for_a_message(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    timer = threading.Timer(0.1, a.send, ("late",))
    timer.start()
    try:
        assert b.poll(DEADLINE) is True
        assert b.recv() == "late"
    finally:
        timer.join()


def test_poll_is_true_when_the_peer_is_gone(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    a.close()
    assert b.poll(DEADLINE) is True
    with pytest.raises(EOFError):
        b.recv()


# --- closing -------------------------------------------------------------------------


def test_fileno_close_and_closed(duplex: tuple[Any, Any]) -> None:
    a, _ = duplex
    fd = a.fileno()
    assert isinstance(fd, int)
    assert fd >= 0
    assert a.closed is False
    a.close()
    assert a.closed is True
    a.close()  # a second close is a no-op
    with pytest.raises(OSError, match="handle is closed"):
        a.fileno()
    with pytest.raises(OSError):
        os.fstat(fd)  # the descriptor itself is closed


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("send", (1,)),
        ("send_bytes", (b"x",)),
        ("recv", ()),
        ("recv_bytes", ()),
        ("recv_bytes_into", (bytearray(4),)),
        ("poll", ()),
        ("fileno", ()),
    ],
)
def test_closed_connection_raises(
    duplex: tuple[Any, Any], method: str, args: tuple[Any, ...]
) -> None:
    a, _ = duplex
    a.close()
    with pytest.raises(OSError, match="handle is closed"):
        getattr(a, method)(*args)


def test_context_manager_closes(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    with a as entered:
        assert entered is a
    assert a.closed
    with pytest.raises(EOFError):
        b.recv_bytes()


def test_collected_connection_closes_its_descriptor() -> None:
    a, b = mp.Pipe()
    fd = a.fileno()
    del a
    # The peer sees end of file: the only copy of that end is gone.
    with pytest.raises(EOFError):
        b.recv()
    b.close()
    assert fd >= 0


def test_connection_constructor_checks() -> None:
    with pytest.raises(ValueError, match="invalid handle"):
        connection.Connection(-1)
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError, match="at least one of"):
            connection.Connection(r, readable=False, writable=False)
    finally:
        os.close(r)
        os.close(w)


def test_connection_over_a_plain_socket() -> None:
    left, right = socket.socketpair()
    a = connection.Connection(left.detach())
    b = connection.Connection(right.detach())
    with a, b:
        a.send({"over": "socket"})
        assert b.recv() == {"over": "socket"}


def test_eof_when_the_peer_closes(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    a.send_bytes(b"last")
    a.close()
    assert b.recv_bytes() == b"last"
    with pytest.raises(EOFError):
        b.recv_bytes()
    with pytest.raises(EOFError):
        b.recv()


def test_send_to_a_closed_peer_is_broken_pipe(duplex: tuple[Any, Any]) -> None:
    a, b = duplex
    b.close()
    with pytest.raises(BrokenPipeError):
        a.send_bytes(b"nobody listens")


def test_simplex_send_to_a_closed_reader_is_broken_pipe(simplex: tuple[Any, Any]) -> None:
    r, w = simplex
    r.close()
    with pytest.raises(BrokenPipeError):
        w.send(1)


def test_module_names() -> None:
    for name in ("Client", "Listener", "Pipe", "wait"):
        assert name in connection.__all__
    assert connection.BUFSIZE == 8192
    assert connection.CONNECTION_TIMEOUT == 20.0
    assert set(connection.families) >= {"AF_INET", "AF_UNIX"}
    assert mp.AuthenticationError is connection.AuthenticationError
    assert mp.BufferTooShort is connection.BufferTooShort


# --- across processes ----------------------------------------------------------------


def test_pipe_ends_pass_to_children(ctx: Any) -> None:
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=targets.echo, args=(child_end,))
    p.start()
    child_end.close()
    for obj in ("text", list(range(1000)), b"x" * 200_000):
        parent_end.send(obj)
        assert parent_end.recv() == obj
    parent_end.send(None)
    with pytest.raises(EOFError):
        parent_end.recv()
    p.join(DEADLINE)
    assert p.exitcode == 0
    parent_end.close()


def test_simplex_ends_pass_to_children(ctx: Any) -> None:
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=targets.send_then_exit, args=(w, {"from": "child"}))
    p.start()
    w.close()
    assert r.recv() == {"from": "child"}
    p.join(DEADLINE)
    assert p.exitcode == 0
    with pytest.raises(EOFError):
        r.recv()
    r.close()


def test_eof_when_the_peer_process_is_killed(ctx: Any) -> None:
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=targets.say_ready_then_sleep, args=(child_end,))
    p.start()
    child_end.close()
    assert parent_end.recv() == "ready"
    p.kill()
    p.join(DEADLINE)
    assert p.exitcode == -signal.SIGKILL
    with pytest.raises(EOFError):
        parent_end.recv()
    parent_end.close()


# --- wait ----------------------------------------------------------------------------


def test_wait_on_connections() -> None:
    a, b = mp.Pipe()
    c, d = mp.Pipe()
    with a, b, c, d:
        assert connection.wait([b, d], 0) == []
        assert connection.wait([b, d], 0.05) == []
        c.send("for d")
        assert connection.wait([b, d], DEADLINE) == [d]
        a.send("for b")
        assert connection.wait([b, d]) == [b, d]
        assert connection.wait((x for x in [d, b]), 0) == [d, b]
        assert d.recv() == "for d"
        assert connection.wait([b, d], 0) == [b]


def test_wait_on_sockets_and_descriptor_numbers() -> None:
    left, right = socket.socketpair()
    r, w = os.pipe()
    try:
        assert connection.wait([right, r], 0.01) == []
        left.send(b"x")
        assert connection.wait([right, r], DEADLINE) == [right]
        os.write(w, b"y")
        assert connection.wait([right, r], DEADLINE) == [right, r]
    finally:
        left.close()
        right.close()
        os.close(r)
        os.close(w)


def test_wait_returns_when_a_message_arrives() -> None:
    a, b = mp.Pipe()
    with a, b:
        timer = threading.Timer(0.1, a.send, ("late",))
        timer.start()
        try:
            assert connection.wait([b]) == [b]
        finally:
            timer.join()


def test_wait_on_process_sentinels(ctx: Any) -> None:
    parent_end, child_end = ctx.Pipe()
    sleeper = ctx.Process(target=targets.say_ready_then_sleep, args=(child_end,))
    quick = ctx.Process(target=targets.send_then_exit, args=(child_end, "done"))
    sleeper.start()
    assert parent_end.recv() == "ready"
    assert connection.wait([sleeper.sentinel], 0.05) == []
    quick.start()
    assert parent_end.recv() == "done"
    assert connection.wait([sleeper.sentinel, quick.sentinel], DEADLINE) == [quick.sentinel]
    sleeper.kill()
    assert connection.wait([sleeper.sentinel], DEADLINE) == [sleeper.sentinel]
    sleeper.join()
    quick.join()
    parent_end.close()
    child_end.close()


def test_wait_on_a_mix_of_connections_and_sentinels(ctx: Any) -> None:
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=targets.send_after, args=(child_end, "hello", 0.05))
    p.start()
    ready = connection.wait([parent_end, p.sentinel], DEADLINE)
    assert parent_end in ready
    assert parent_end.recv() == "hello"
    p.join(DEADLINE)
    assert connection.wait([parent_end, p.sentinel], DEADLINE)[-1] == p.sentinel
    parent_end.close()
    child_end.close()


def test_wait_rejects_bad_objects() -> None:
    with pytest.raises(ValueError):
        connection.wait([-1], 0)
    with pytest.raises((ValueError, TypeError)):
        connection.wait([object()], 0)
