"""Child-process targets for the queue tests (importable by spawned children)."""

from __future__ import annotations

import importlib
import os
import signal
import time
from typing import Any

from _support import mp


def put_range(q: Any, start: int, stop: int) -> None:
    for i in range(start, stop):
        q.put(i)


def put_tagged(q: Any, tag: int, count: int) -> None:
    """Puts (tag, i) for i in range(count): per-producer order is checkable."""
    for i in range(count):
        q.put((tag, i))


def put_then_exit(q: Any, count: int, payload_size: int) -> None:
    """Puts and exits at once, without waiting for anyone to read (gh-73983)."""
    for i in range(count):
        q.put((i, b"x" * payload_size))


def put_big_then_exit(q: Any, size: int) -> None:
    q.put(b"\x07" * size)


def put_many_then_cancel(q: Any, count: int) -> None:
    """Puts more than the ring holds, then exits without waiting for a reader."""
    for i in range(count):
        q.put(i)
    q.cancel_join_thread()


def sum_from(q: Any, count: int, out: Any) -> None:
    total = 0
    for _ in range(count):
        total += q.get()
    out.put(total)


def echo(inbox: Any, outbox: Any) -> None:
    """Sends back whatever arrives until None."""
    while True:
        item = inbox.get()
        if item is None:
            return
        outbox.put(item)


def work_and_mark_done(q: Any, results: Any) -> None:
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            return
        results.put(item * 2)
        q.task_done()


def put_forever(q: Any, ready: Any) -> None:
    """Puts tagged messages of varying size until killed."""
    ready.set()
    i = 0
    while True:
        q.put((i, os.urandom(i % 3000)))
        i += 1


def get_forever(q: Any, ready: Any) -> None:
    ready.set()
    while True:
        q.get()


def block_in_get_with_handler(q: Any, result_path: str) -> None:
    """Blocks in get(); SIGUSR1 raises in the handler, which must interrupt the get."""

    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    signal.signal(signal.SIGUSR1, handler)
    started = time.monotonic()
    try:
        q.get()
        outcome = "returned"
    except Interrupted:
        outcome = "interrupted"
    from _support import write_atomically

    write_atomically(result_path, f"{outcome} {time.monotonic() - started:.3f}")


__all__ = ["mp"]


def stream_then_hang(q: Any, size: int) -> None:
    """Puts a message far larger than the ring, then waits to be killed."""
    q.put(b"\x01" * size)
    time.sleep(600)


def write_through_received_handle(conn: Any, text: str) -> None:
    """Receives a descriptor over ``conn`` and writes ``text`` to it."""
    reduction = importlib.import_module(f"{mp.__name__}.reduction")
    fd = reduction.recv_handle(conn)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    conn.send("written")


def use_received_connection(control: Any) -> None:
    """Receives a connection over ``control`` (pickled while this process was already
    running) and answers on it."""
    conn = control.recv()
    conn.send(("hello from", os.getpid()))
    conn.close()
    control.send("done")
