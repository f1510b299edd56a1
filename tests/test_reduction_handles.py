"""Passing descriptors: ``reduction.sendfds``/``recvfds`` and ``send_handle``/``recv_handle``.

Runs against the stdlib too (``FERROPROC_TEST_MODULE=multiprocessing``): the format is the
stdlib's, and a descriptor passed to a child is usable there.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest

import _queue_targets as qt
from _support import DEADLINE, MODULE_NAME, mp
from _sync_helpers import finish, start

pytestmark = pytest.mark.timeout(60)

reduction = importlib.import_module(f"{MODULE_NAME}.reduction")


def test_descriptors_cross_a_socket_pair() -> None:
    a, b = socket.socketpair()
    with a, b:
        readers = [os.pipe() for _ in range(3)]
        reduction.sendfds(a, [w for _, w in readers])
        received = reduction.recvfds(b, 3)
        assert len(received) == 3
        for (r, w), passed in zip(readers, received):
            os.write(passed, b"via the copy")
            assert os.read(r, 100) == b"via the copy"
            for fd in (r, w, passed):
                os.close(fd)


def test_recvfds_raises_eof_when_the_peer_is_gone() -> None:
    a, b = socket.socketpair()
    a.close()
    with b, pytest.raises(EOFError):
        reduction.recvfds(b, 1)


def test_a_message_without_descriptors_is_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.send(b"\x01")
        with pytest.raises(RuntimeError):
            reduction.recvfds(b, 1)


def test_a_handle_reaches_a_child_over_a_pipe(ctx: Any, tmp_path: Path) -> None:
    parent_end, child_end = ctx.Pipe()
    p = start(ctx, qt.write_through_received_handle, child_end, "hello from the child")
    target = tmp_path / "out"
    with open(target, "w") as file:
        reduction.send_handle(parent_end, file.fileno(), p.pid)
        assert parent_end.poll(DEADLINE)
        assert parent_end.recv() == "written"
    assert finish(p) == 0
    assert target.read_text() == "hello from the child"
    parent_end.close()
    child_end.close()


def test_have_send_handle() -> None:
    assert reduction.HAVE_SEND_HANDLE
    assert mp.reduction is reduction
