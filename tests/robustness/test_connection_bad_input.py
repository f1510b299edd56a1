"""A connection facing a misbehaving peer: corrupt frames, lying lengths, a peer killed
mid-frame, and a signal handler that raises during a blocking receive."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import _connection_targets as targets
from _support import DEADLINE, MODULE_NAME, Interrupted, mp

connection = importlib.import_module(f"{MODULE_NAME}.connection")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def raw_peer() -> Iterator[tuple[socket.socket, Any]]:
    """A plain socket on one side (to write anything at all) and a Connection on the
    other."""
    ours, theirs = socket.socketpair()
    conn = connection.Connection(theirs.detach())
    yield ours, conn
    ours.close()
    conn.close()


def rss_bytes() -> int:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_eof_inside_the_header(raw_peer: tuple[socket.socket, Any]) -> None:
    ours, conn = raw_peer
    ours.sendall(b"\0\0")
    ours.close()
    with pytest.raises(OSError, match="got end of file during message"):
        conn.recv_bytes()


def test_eof_inside_the_payload(raw_peer: tuple[socket.socket, Any]) -> None:
    ours, conn = raw_peer
    ours.sendall(struct.pack("!i", 10) + b"12345")
    ours.close()
    with pytest.raises(OSError, match="got end of file during message"):
        conn.recv_bytes()


def test_a_payload_arriving_in_pieces(raw_peer: tuple[socket.socket, Any]) -> None:
    ours, conn = raw_peer
    message = os.urandom(300_000)
    frame = struct.pack("!i", len(message)) + message

    def dribble() -> None:
        for start in range(0, len(frame), 7777):
            ours.sendall(frame[start : start + 7777])

    writer = threading.Thread(target=dribble)
    writer.start()
    try:
        assert conn.recv_bytes() == message
    finally:
        writer.join()


def test_a_long_header_for_a_short_payload_is_accepted(
    raw_peer: tuple[socket.socket, Any],
) -> None:
    ours, conn = raw_peer
    ours.sendall(targets.huge_header(5) + b"hello")
    assert conn.recv_bytes() == b"hello"


def test_huge_claimed_length_over_maxlength(raw_peer: tuple[socket.socket, Any]) -> None:
    ours, conn = raw_peer
    ours.sendall(targets.huge_header(2**62))
    with pytest.raises(OSError, match="bad message length"):
        conn.recv_bytes(1024)
    # Duplex: the connection stops reading and still sends.
    assert not conn.readable
    conn.send_bytes(b"still here")
    assert ours.recv(100)[4:] == b"still here"


@pytest.mark.ferroproc_only
def test_huge_claimed_length_allocates_nothing(raw_peer: tuple[socket.socket, Any]) -> None:
    # The stdlib would ask os.read for 2**62 bytes at once (MemoryError).
    ours, conn = raw_peer
    before = rss_bytes()
    ours.sendall(targets.huge_header(2**62) + b"only a few bytes")
    ours.close()
    with pytest.raises(OSError, match="got end of file during message"):
        conn.recv_bytes()
    # Generous: anything allocated for the claimed size would be petabytes.
    assert rss_bytes() - before < 64 * 1024 * 1024


@pytest.mark.ferroproc_only
def test_impossible_length_is_a_bad_message_length(raw_peer: tuple[socket.socket, Any]) -> None:
    ours, conn = raw_peer
    ours.sendall(targets.huge_header(2**64 - 1))
    with pytest.raises(OSError, match="bad message length"):
        conn.recv_bytes()
    assert not conn.readable


@pytest.mark.ferroproc_only
def test_negative_length_is_a_bad_message_length(raw_peer: tuple[socket.socket, Any]) -> None:
    # The stdlib reads a negative length as an empty message and goes on out of step.
    ours, conn = raw_peer
    ours.sendall(struct.pack("!i", -5) + b"garbage")
    with pytest.raises(OSError, match="bad message length"):
        conn.recv()
    assert not conn.readable
    with pytest.raises(OSError, match="connection is write-only"):
        conn.recv()


def test_garbage_that_is_not_a_pickle(raw_peer: tuple[socket.socket, Any]) -> None:
    ours, conn = raw_peer
    ours.sendall(struct.pack("!i", 4) + b"\xff\xfe\xfd\xfc")
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for garbage
        conn.recv()
    # The frame was consumed whole: the next one reads fine.
    ours.sendall(struct.pack("!i", 2) + b"ok")
    assert conn.recv_bytes() == b"ok"


def test_peer_killed_mid_frame(ctx: Any) -> None:
    parent_end, child_end = ctx.Pipe()
    frame_start = struct.pack("!i", 1000) + b"only part of it"
    p = ctx.Process(target=targets.write_raw_then_die, args=(child_end, frame_start))
    p.start()
    child_end.close()
    p.join(DEADLINE)
    assert p.exitcode == -signal.SIGKILL
    with pytest.raises(OSError, match="got end of file during message"):
        parent_end.recv_bytes()
    parent_end.close()


# --- a signal handler that raises interrupts a blocking receive --------------------------


@pytest.mark.usefixtures("sigusr1_raises")
@pytest.mark.parametrize("method", ["recv", "recv_bytes", "poll"])
def test_signal_handler_exception_escapes_a_blocking_receive(method: str) -> None:
    a, b = mp.Pipe()
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGUSR1))
    try:
        with pytest.raises(Interrupted):
            timer.start()
            if method == "poll":
                b.poll(None)
            else:
                getattr(b, method)()
        # Interrupted between frames: the connection is still in step.
        a.send("after the signal")
        assert b.recv() == "after the signal"
    finally:
        timer.cancel()
        timer.join()
        a.close()
        b.close()


@pytest.mark.usefixtures("sigusr1_raises")
def test_signal_handler_exception_escapes_wait() -> None:
    a, b = mp.Pipe()
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGUSR1))
    try:
        with pytest.raises(Interrupted):
            timer.start()
            connection.wait([b], 90.0)
    finally:
        timer.cancel()
        timer.join()
        a.close()
        b.close()


def test_other_threads_run_while_one_waits_in_recv() -> None:
    a, b = mp.Pipe()
    received: list[Any] = []
    reader = threading.Thread(target=lambda: received.append(b.recv()))
    reader.start()
    # This thread runs Python while the reader is blocked: the GIL is not held there.
    total = sum(range(100_000))
    a.send(total)
    reader.join(DEADLINE)
    assert received == [total]
    a.close()
    b.close()
