"""``pipe_pingpong``: 8-byte messages bounced between two processes through ``Pipe()``.

Unit: microseconds per round trip (lower is better). Each trial makes ``a, b =
ctx.Pipe()`` in the ``fork`` context, starts a process running :func:`pong` on ``b``,
bounces ``warmup`` messages untimed, then times ``count`` round trips of::

    a.send_bytes(message)      # 8 bytes, a different one each time
    reply = a.recv_bytes()

What one round trip costs on a multi-core machine is mostly waking the process that
sleeps waiting for the message on another core, twice, not copying eight bytes.

Check: every reply is the message just sent, and the process exited with 0.

Floor: the same exchange over two raw ``os.pipe``s with ``os.write``/``os.read`` and a
bare ``os.fork`` child. Target: a quarter of the stdlib's time (a speedup of 4).
"""

from __future__ import annotations

import os
import struct
import time

from ferroproc.bench.workloads._gate import positive_int

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Round trips timed per trial, (full, --quick).
COUNT = (50_000, 10_000)
#: Untimed round trips first: the child is running and both sides are warm.
WARMUP = 200
#: Each message is a counter packed in 8 bytes, so a stale or lost reply is noticed.
_MESSAGE = struct.Struct("q")


def pong(conn: Any, rounds: int) -> None:
    """The child: send back each of ``rounds`` messages as it arrives."""
    for _ in range(rounds):
        conn.send_bytes(conn.recv_bytes())


def _bounce(send: Any, recv: Any, first: int, rounds: int) -> None:
    """``rounds`` round trips of the messages ``first``, ``first + 1``, ...; checked."""
    from ferroproc.bench.workloads._base import CheckFailed

    pack = _MESSAGE.pack
    for i in range(first, first + rounds):
        message = pack(i)
        send(message)
        if recv() != message:
            raise CheckFailed(f"round trip {i}: the reply is not the message sent")


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``count`` 8-byte round trips through ``Pipe()``; return µs per round trip."""
    from ferroproc.bench.workloads._base import CheckFailed

    del impl  # every implementation is driven through the stdlib's API
    count = positive_int(params, "count")
    warmup = positive_int(params, "warmup")
    ctx = module.get_context(str(params["method"]))
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=pong, args=(theirs, warmup + count))
    child.start()
    theirs.close()
    measured = False
    try:
        _bounce(ours.send_bytes, ours.recv_bytes, 0, warmup)
        started = time.perf_counter()
        _bounce(ours.send_bytes, ours.recv_bytes, warmup, count)
        elapsed = time.perf_counter() - started
        measured = True
    finally:
        if not measured:
            child.kill()
        child.join(60)
        if child.exitcode is None:
            child.kill()
            child.join()
        ours.close()
    if child.exitcode != 0:
        raise CheckFailed(f"the pong process exited with {child.exitcode}, expected 0")
    return elapsed / count * 1e6


def _raw_pipes(params: Params) -> float:
    """Floor: the same exchange over two ``os.pipe``s and a bare ``os.fork`` child."""
    from ferroproc.bench.workloads._base import CheckFailed

    count = positive_int(params, "count")
    warmup = positive_int(params, "warmup")
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child echoes, then leaves at once
        code = 0
        try:
            for _ in range(warmup + count):
                os.write(to_parent_w, os.read(to_child_r, _MESSAGE.size))
        except BaseException:
            code = 1
        os._exit(code)
    os.close(to_child_r)
    os.close(to_parent_w)
    size = _MESSAGE.size

    def send(message: bytes) -> None:
        os.write(to_child_w, message)

    def recv() -> bytes:
        return os.read(to_parent_r, size)

    try:
        _bounce(send, recv, 0, warmup)
        started = time.perf_counter()
        _bounce(send, recv, warmup, count)
        elapsed = time.perf_counter() - started
    finally:
        os.close(to_child_w)
        os.close(to_parent_r)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise CheckFailed("the raw pipe child did not exit with 0")
    return elapsed / count * 1e6


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    return [
        Variant(
            "8B",
            {"method": "fork", "count": sizing.count(*COUNT), "warmup": WARMUP},
            floor="os.pipe",
            target=Target("baseline", 4.0),
        )
    ]


def workload() -> Workload:
    """Describe ``pipe_pingpong`` for the registry."""
    from ferroproc.bench.workloads._base import Floor, Workload

    return Workload(
        name="pipe_pingpong",
        description="8-byte send_bytes/recv_bytes round trips between two processes via Pipe()",
        unit="us/rt",
        better="lower",
        variants=_variants,
        run=run,
        floors={"os.pipe": Floor("os.pipe", "raw os.pipe ping-pong, os.fork child", _raw_pipes)},
        order=40,
    )
