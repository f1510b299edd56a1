"""Task functions for the pool tests.

They live at module level in an importable module so that workers started by spawn and
by the fork server can unpickle them (``conftest`` puts this folder on ``PYTHONPATH``).
Tasks that must be observed from the test report through files, never through timing.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _support import DEADLINE, wait_until, write_atomically

# Set in each worker by `set_worker_global`, the pool's initializer in the tests.
worker_global: Any = None


def square(x: int) -> int:
    return x * x


def add(x: int, y: int = 0) -> int:
    return x + y


def getpid(_: object = None) -> int:
    return os.getpid()


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def raise_on(x: int, bad: int) -> int:
    """Returns ``x * x``, except for ``bad``, which raises ``ValueError``."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x * x


def wait_for_file(path: str, value: Any = None) -> Any:
    """Returns ``value`` once ``path`` exists (the test creates it when it is ready)."""
    if not wait_until(Path(path).exists):
        raise RuntimeError(f"{path} never appeared")
    return value


def set_worker_global(value: Any) -> None:
    """A pool initializer: sets this module's global in the worker."""
    global worker_global
    worker_global = value


def read_worker_global(_: object = None) -> Any:
    return worker_global


def unpicklable_on(x: int, bad: int) -> Any:
    """Returns ``x``, except for ``bad``, which returns a lock (pickle refuses locks)."""
    if x == bad:
        return threading.Lock()
    return x


class UnloadableError(Exception):
    """Pickles (its args are one string), but unpickling calls ``UnloadableError(text)``,
    which lacks the second required argument (CPython gh-79492)."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first}/{second}")


def raise_unloadable() -> None:
    raise UnloadableError("first", "second")


def exit_task(code: int) -> None:
    sys.exit(code)


# How a task can kill its own worker, and the exit code the pool then reports.
DEATHS = {
    "sigkill": -signal.SIGKILL,
    "os_exit": 3,
    "segfault": -signal.SIGSEGV,
}


def die(how: str) -> None:
    """Kills the calling worker, as named in ``DEATHS``."""
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "os_exit":
        os._exit(3)
    elif how == "segfault":
        # Without faulthandler (inherited from pytest under fork), which would print a
        # traceback before the signal ends the process.
        faulthandler.disable()
        ctypes.string_at(0)
    time.sleep(DEADLINE)
    os._exit(99)


def die_with_pid(how: str, pid_file: str) -> None:
    """Writes the worker's pid to ``pid_file``, then dies as ``how`` says."""
    write_atomically(pid_file, str(os.getpid()))
    die(how)


def die_on(x: int, bad: int, how: str = "sigkill") -> int:
    """Returns ``x * x``, except for ``bad``, on which the worker dies."""
    if x == bad:
        die(how)
    return x * x


def die_first_time(marker: str) -> str:
    """Dies by SIGKILL the first time it runs (``marker`` does not exist yet), returns
    ``"survived"`` the next time."""
    path = Path(marker)
    if not path.exists():
        write_atomically(path, str(os.getpid()))
        die("sigkill")
    return "survived"


def die_counting(directory: str) -> None:
    """Records one attempt in ``directory`` (a file per attempt), then dies by SIGKILL."""
    write_atomically(Path(directory) / f"attempt-{os.getpid()}", "")
    die("sigkill")


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def announce_and_sleep(directory: str, index: int, seconds: float) -> int:
    """Writes ``<index>`` (holding the worker's pid) into ``directory``, then sleeps."""
    write_atomically(Path(directory) / str(index), str(os.getpid()))
    time.sleep(seconds)
    return index


def append_to(items: list[Any], value: Any) -> int:
    """For thread pools: mutates the caller's list (nothing is copied between threads)."""
    items.append(value)
    return len(items)


def current_thread_name(_: object = None) -> str:
    return threading.current_thread().name


def failing_initializer() -> None:
    raise RuntimeError("the initializer cannot connect")
