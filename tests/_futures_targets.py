"""Calls for the executor tests.

They live at module level in an importable module so that workers started by spawn and
by the fork server can unpickle them (``conftest`` puts this folder on ``PYTHONPATH``).
A call that must still be running when the test looks at it announces itself in a file
and waits for a file the test creates, never for a sleep to elapse.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from _pool_targets import add, getpid, raise_value_error, square, wait_for_file
from _support import DEADLINE, wait_until, write_atomically

__all__ = ["add", "getpid", "raise_value_error", "square", "wait_for_file"]

# Set in each worker by `set_worker_global`, the executor's initializer in the tests.
worker_global: Any = None


def square_unless(x: int, bad: int) -> int:
    """Returns ``x * x``, except for ``bad``, which raises ``ValueError``."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x * x


def hold(started: str, go: str, value: Any = None) -> Any:
    """Writes ``started`` (the worker's pid), then returns ``value`` once ``go`` exists."""
    write_atomically(started, str(os.getpid()))
    if not wait_until(Path(go).exists):
        raise RuntimeError(f"{go} never appeared")
    return value


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def set_worker_global(value: Any) -> None:
    """An initializer: sets this module's global in the worker."""
    global worker_global
    worker_global = value


def read_worker_global(_: object = None) -> Any:
    return worker_global


def fail_to_initialize() -> None:
    raise RuntimeError("initializer failed on purpose")


def kill_own_worker(_: object = None) -> None:
    """SIGKILLs the worker running it."""
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(DEADLINE)


def die_first_time(marker: str) -> str:
    """SIGKILLs its worker the first time (``marker`` does not exist yet); returns
    ``"survived"`` the next time."""
    path = Path(marker)
    if not path.exists():
        write_atomically(path, str(os.getpid()))
        kill_own_worker()
    return "survived"


def write_later(path: str, seconds: float) -> None:
    """Sleeps, then writes ``path``: work that must complete after its submitter left."""
    time.sleep(seconds)
    write_atomically(path, "done")


def call(fn: Any, *args: Any) -> Any:
    """Returns ``fn(*args)``: lets one ``map`` run different functions."""
    return fn(*args)


def leave_an_executor_open(module: str, start_method: str, path: str) -> None:
    """A child process's body: submits to an executor it never shuts down, and returns."""
    import importlib

    from _support import mp

    futures = importlib.import_module(module)
    executor = futures.ProcessPoolExecutor(1, mp_context=mp.get_context(start_method))
    executor.submit(write_later, path, 0.1)
