"""What the multi-process workloads share: reading their signals off raw pipes without
waiting for ever, and putting their processes away whatever happened.

The signals travel over ``os.pipe``s rather than any primitive of the implementation
under test, so that a broken implementation cannot hang the benchmark and a slow one is
not timed through its own machinery.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ferroproc.bench.workloads._base import CheckFailed

#: How long a trial waits for any one signal before it fails.
WAIT_S = 120.0


def read_exactly(
    fd: int,
    size: int,
    what: str,
    workers: Sequence[Any] = (),
    wait_s: float = WAIT_S,
) -> bytes:
    """Read ``size`` bytes from ``fd``. Fails at once if one of ``workers`` exits with an
    error, at end of file (every writer gone without sending it), or after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    watched = {worker.sentinel: worker for worker in workers}
    data = b""
    while len(data) < size:
        left = deadline - time.monotonic()
        ready = select.select([fd, *watched], [], [], left)[0] if left > 0 else []
        if not ready:
            raise CheckFailed(f"{what}: nothing after {wait_s:g} s")
        for sentinel in ready:
            if sentinel == fd:
                continue
            worker = watched.pop(sentinel)
            worker.join()
            if worker.exitcode != 0:
                raise CheckFailed(f"{what}: {worker.name} exited with code {worker.exitcode}")
        if fd in ready:
            chunk = os.read(fd, size - len(data))
            if not chunk:
                raise CheckFailed(f"{what}: every process ended without it")
            data += chunk
    return data


def put_away(
    workers: Iterable[Any], fds: Iterable[int], *, measured: bool, wait_s: float = WAIT_S
) -> None:
    """Join every started worker (killing it first if the trial did not finish: it may
    be waiting for a start signal that will never come, and killing it if it does not end
    in ``wait_s``), then close the trial's descriptors still open (``-1``: closed)."""
    for worker in workers:
        if worker.pid is None:
            continue
        if not measured:
            worker.kill()
        worker.join(wait_s)
        if worker.exitcode is None:
            worker.kill()
            worker.join()
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def check_exit_codes(workers: Iterable[Any]) -> None:
    """Fail unless every worker exited with 0."""
    codes = [worker.exitcode for worker in workers]
    if any(code != 0 for code in codes):
        raise CheckFailed(f"the processes' exit codes were {codes}, expected 0 each")


def positive_int(params: Any, key: str) -> int:
    """``params[key]``, which must be a positive int."""
    value = params[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a positive int, not {value!r}")
    return value
