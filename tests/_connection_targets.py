"""Functions that run in child processes for the connection tests.

They live in an importable module (not in the test files) so that spawned and fork-server
children can unpickle them. Children talk back through the connections they are given
and their exit codes.
"""

from __future__ import annotations

import importlib
import os
import signal
import struct
import time
from typing import Any

from _support import DEADLINE, MODULE_NAME

connection = importlib.import_module(f"{MODULE_NAME}.connection")


def echo(conn: Any) -> None:
    """Sends back every object received until ``None``, then closes its end."""
    while True:
        obj = conn.recv()
        if obj is None:
            break
        conn.send(obj)
    conn.close()


def echo_bytes(conn: Any) -> None:
    """Sends back every message received until an empty one."""
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)


def send_then_exit(conn: Any, obj: Any) -> None:
    conn.send(obj)


def send_after(conn: Any, obj: Any, delay: float) -> None:
    time.sleep(delay)
    conn.send(obj)


def say_ready_then_sleep(conn: Any) -> None:
    """Tells the parent it runs, then waits to be killed."""
    conn.send("ready")
    time.sleep(DEADLINE * 2)


def write_raw_then_die(fd_conn: Any, raw: bytes) -> None:
    """Writes ``raw`` on the connection's descriptor, bypassing framing, then dies by
    SIGKILL (no clean-up, no flush)."""
    os.write(fd_conn.fileno(), raw)
    os.kill(os.getpid(), signal.SIGKILL)


def client_roundtrip(address: Any, authkey: bytes | None, family: str | None = None) -> None:
    """Connects to a listener, echoes one object back doubled, and exits."""
    conn = connection.Client(address, family=family, authkey=authkey)
    with conn:
        value = conn.recv()
        conn.send(value * 2)


def serve_once(conn: Any, family: str, authkey: bytes | None) -> None:
    """Listens, sends the parent its address, accepts one client and echoes one object."""
    with connection.Listener(family=family, authkey=authkey) as listener:
        conn.send(listener.address)
        with listener.accept() as client:
            client.send(client.recv())


def huge_header(length: int) -> bytes:
    """A long-form header announcing ``length`` bytes."""
    return struct.pack("!i", -1) + struct.pack("!Q", length)
