"""Connections pickled while no child is being started travel through the resource sharer.

Runs against the stdlib too (``FERROPROC_TEST_MODULE=multiprocessing``).
"""

from __future__ import annotations

import importlib
import os
import pickle
from typing import Any

import pytest

import _queue_targets as qt
from _support import DEADLINE, MODULE_NAME, mp
from _sync_helpers import finish, start

pytestmark = pytest.mark.timeout(60)

reduction = importlib.import_module(f"{MODULE_NAME}.reduction")
resource_sharer = importlib.import_module(f"{MODULE_NAME}.resource_sharer")


def test_a_connection_sent_to_a_running_child_works_there(ctx: Any) -> None:
    control, child_control = ctx.Pipe()
    p = start(ctx, qt.use_received_connection, child_control)
    mine, theirs = ctx.Pipe()
    control.send(theirs)  # pickled now, with the child already running
    theirs.close()
    assert mine.poll(DEADLINE)
    greeting, pid = mine.recv()
    assert greeting == "hello from" and pid == p.pid
    assert control.recv() == "done"
    assert finish(p) == 0
    for conn in (control, child_control, mine):
        conn.close()


def test_a_pickled_connection_can_be_unpickled_in_this_process() -> None:
    a, b = mp.Pipe()
    with a, b:
        data = pickle.dumps(reduction.DupFd(b.fileno()))
        fd = pickle.loads(data).detach()
        try:
            assert fd != b.fileno()
            copy = mp.connection.Connection(fd)
            copy.send("via the copy")
            assert a.recv() == "via the copy"
            copy.close()
        except BaseException:
            os.close(fd)
            raise


def test_stop_closes_what_was_not_taken() -> None:
    r, w = os.pipe()
    try:
        reduction.DupFd(w)
        resource_sharer.stop(timeout=DEADLINE)
        os.close(w)
        # The offered duplicate was closed by stop(): the pipe has no writer left.
        assert os.read(r, 1) == b""
    finally:
        os.close(r)
