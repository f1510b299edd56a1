"""``process_start``: ``Process(target=noop)`` start and join, per start method.

Unit: milliseconds per process (lower is better). Each trial starts and joins one
process untimed first (for forkserver this also starts the server), then times
``count`` start+join pairs one after another and checks that every process ran in a
new pid and exited with code 0.

Floors: bare ``os.fork`` + ``os.waitpid`` (the child calls ``os._exit(0)``) for fork and
forkserver; the interpreter's own start-up (``sys.executable -c pass`` through
``os.posix_spawn``) for spawn.

Spawned and fork-server children import this module to find :func:`noop` (as the
top-level module ``process_start``, see the registry), so it imports nothing heavy at
module level.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload

#: Processes timed per trial, (full, --quick).
FORK_COUNT = (200, 100)
SLOW_COUNT = (30, 10)


def noop() -> None:
    """The target of every measured process: do nothing."""


def _count(params: Params) -> int:
    count = params["count"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive int, not {count!r}")
    return count


def _check_exits(what: str, outcomes: list[tuple[int | None, int | None]], count: int) -> None:
    """Raise :class:`CheckFailed` unless ``count`` children ran in new pids and exited 0."""
    from ferroproc.bench.workloads._base import CheckFailed

    if len(outcomes) != count:
        raise CheckFailed(f"{what}: {len(outcomes)} processes finished, expected {count}")
    me = os.getpid()
    bad_pid = [pid for pid, _ in outcomes if pid is None or pid == me]
    if bad_pid:
        raise CheckFailed(f"{what}: {len(bad_pid)} of {count} processes had no pid of their own")
    bad_exit = [code for _, code in outcomes if code != 0]
    if bad_exit:
        shown = ", ".join(repr(code) for code in bad_exit[:5])
        raise CheckFailed(
            f"{what}: {len(bad_exit)} of {count} processes did not exit with 0"
            f" (exit codes: {shown})"
        )


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Time ``count`` start+join pairs of ``Process(target=noop)``; return ms per process."""
    del impl  # every implementation is driven through the stdlib's API
    method = str(params["method"])
    count = _count(params)
    ctx = module.get_context(method)

    warm = ctx.Process(target=noop)
    warm.start()
    warm.join()
    _check_exits(f"{method} warm-up", [(warm.pid, warm.exitcode)], 1)

    outcomes: list[tuple[int | None, int | None]] = []
    started = time.perf_counter()
    for _ in range(count):
        proc = ctx.Process(target=noop)
        proc.start()
        proc.join()
        outcomes.append((proc.pid, proc.exitcode))
    elapsed = time.perf_counter() - started

    _check_exits(method, outcomes, count)
    return elapsed / count * 1e3


def _fork_waitpid(params: Params) -> float:
    """Floor: bare ``os.fork`` + ``os.waitpid``, the child calling ``os._exit(0)``."""

    def once() -> tuple[int, int]:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child leaves at once
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        return pid, os.waitstatus_to_exitcode(status)

    count = _count(params)
    _check_exits("fork floor warm-up", [once()], 1)
    outcomes: list[tuple[int | None, int | None]] = []
    started = time.perf_counter()
    for _ in range(count):
        pid, code = once()
        outcomes.append((pid, code))
    elapsed = time.perf_counter() - started
    _check_exits("fork floor", outcomes, count)
    return elapsed / count * 1e3


def _interpreter_start(params: Params) -> float:
    """Floor: ``sys.executable -c pass`` through ``os.posix_spawn``, then ``os.waitpid``."""
    argv = [sys.executable, "-c", "pass"]
    env = dict(os.environ)

    def once() -> tuple[int, int]:
        pid = os.posix_spawn(sys.executable, argv, env)
        _, status = os.waitpid(pid, 0)
        return pid, os.waitstatus_to_exitcode(status)

    count = _count(params)
    _check_exits("interpreter floor warm-up", [once()], 1)
    outcomes: list[tuple[int | None, int | None]] = []
    started = time.perf_counter()
    for _ in range(count):
        pid, code = once()
        outcomes.append((pid, code))
    elapsed = time.perf_counter() - started
    _check_exits("interpreter floor", outcomes, count)
    return elapsed / count * 1e3


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    fork_count = sizing.count(*FORK_COUNT)
    slow_count = sizing.count(*SLOW_COUNT)
    return [
        Variant(
            "fork",
            {"method": "fork", "count": fork_count},
            floor="fork",
            target=Target("floor", 1.3),
        ),
        Variant(
            "spawn",
            {"method": "spawn", "count": slow_count},
            floor="interpreter",
            target=Target("baseline", 1.0),
        ),
        Variant(
            "forkserver",
            {"method": "forkserver", "count": slow_count},
            floor="fork",
            target=Target("baseline", 2.0),
        ),
    ]


def workload() -> Workload:
    """Describe ``process_start`` for the registry."""
    from ferroproc.bench.workloads._base import Floor, Workload

    return Workload(
        name="process_start",
        description="Process(target=noop) start + join, one after another, per start method",
        unit="ms/proc",
        better="lower",
        variants=_variants,
        run=run,
        floors={
            "fork": Floor("fork", "bare os.fork + os.waitpid", _fork_waitpid),
            "interpreter": Floor(
                "interpreter", "python -c pass via os.posix_spawn", _interpreter_start
            ),
        },
        order=10,
    )
