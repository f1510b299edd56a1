"""Processes that die in the middle of using a queue, and waits interrupted by signals.

With the stdlib, a process killed while holding a queue's read or write lock wedges the
queue for everyone, and a killed writer can leave half a message in the pipe. ferroproc's
queue survives: the next process takes the dead one's lock over, a half-written message
is dropped whole and counted in ``lost_messages``, and every message that arrives is
intact. Waits are bounded by ``DEADLINE`` and assert outcomes, never durations.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import _queue_targets as qt
from _support import DEADLINE, mp, read_when_present, wait_until
from _sync_helpers import finish, start, wait_blocked

pytestmark = [pytest.mark.timeout(120), pytest.mark.ferroproc_only]


def kill(p: Any) -> None:
    p.kill()
    assert finish(p) == -signal.SIGKILL


def check_intact(item: Any) -> None:
    index, payload = item
    assert len(payload) == index % 3000, "a torn message was delivered"


def test_writers_killed_mid_put_never_wedge_or_tear_the_queue(ctx: Any) -> None:
    q = ctx.Queue(capacity=64 * 1024)
    for _ in range(3):
        ready = ctx.Event()
        writer = start(ctx, qt.put_forever, q, ready)
        assert ready.wait(DEADLINE)
        # Let it fill the ring, then drain some while it writes, and kill it.
        assert wait_until(lambda: q.qsize() > 10)
        for _ in range(50):
            check_intact(q.get(timeout=DEADLINE))
        kill(writer)
        while True:
            try:
                check_intact(q.get(timeout=0.2))
            except queue.Empty:
                break
    # Still usable, in both directions.
    q.put((5, b"x" * 5))
    check_intact(q.get(timeout=DEADLINE))
    assert q.lost_messages >= 0


def test_readers_killed_mid_get_never_wedge_the_queue(ctx: Any) -> None:
    q = ctx.Queue(capacity=64 * 1024)
    for _ in range(3):
        ready = ctx.Event()
        reader = start(ctx, qt.get_forever, q, ready)
        assert ready.wait(DEADLINE)
        for i in range(2000):
            q.put((i, b"y" * (i % 3000)))
        kill(reader)
    # Whatever the dead readers left is whole, and the queue works.
    while True:
        try:
            check_intact(q.get(timeout=0.2))
        except queue.Empty:
            break
    q.put((7, b"z" * 7))
    check_intact(q.get(timeout=DEADLINE))


def test_a_large_message_survives_its_writer_being_killed(ctx: Any) -> None:
    # Larger than the ring: it lives in a file of its own, passed over the queue's socket,
    # so it is complete the moment put returns, whatever happens to the writer next.
    q = ctx.Queue(capacity=64 * 1024)
    size = 8 * 1024 * 1024
    writer = start(ctx, qt.stream_then_hang, q, size)
    assert wait_until(lambda: not q.empty())
    kill(writer)
    assert q.get(timeout=DEADLINE) == b"\x01" * size
    assert q.lost_messages == 0
    q.put("next")
    assert q.get(timeout=DEADLINE) == "next"


def test_a_raising_signal_handler_interrupts_a_blocked_get(ctx: Any, tmp_path: Path) -> None:
    q = ctx.Queue()
    result = tmp_path / "result"
    p = start(ctx, qt.block_in_get_with_handler, q, str(result))
    wait_blocked(p)
    os.kill(p.pid, signal.SIGUSR1)
    outcome = read_when_present(result).split()[0]
    assert outcome == "interrupted"
    assert finish(p) == 0


def test_ctrl_c_interrupts_a_blocked_get_in_the_main_thread() -> None:
    q = mp.Queue()
    timer = threading.Timer(0.2, lambda: signal.raise_signal(signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            q.get(timeout=DEADLINE)
    finally:
        timer.cancel()
    q.put(1)
    assert q.get() == 1
