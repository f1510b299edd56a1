"""Helpers shared by the tests and by the child processes they start.

The module under test is chosen by ``FERROPROC_TEST_MODULE`` (default ``ferroproc``), so
the same tests can be checked against the stdlib: ``FERROPROC_TEST_MODULE=multiprocessing``.
This file must stay importable without pytest: spawned and fork-server children import it
(through ``_targets``) to find the module under test.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path

MODULE_NAME = os.environ.get("FERROPROC_TEST_MODULE", "ferroproc")
mp = importlib.import_module(MODULE_NAME)
IS_STDLIB = MODULE_NAME == "multiprocessing"

START_METHODS = ("fork", "spawn", "forkserver")

# How long a test waits for something that should happen at once. Generous on purpose:
# it bounds a failure, it is never a speed claim.
DEADLINE = 30.0


def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    """Polls ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` names a process that has not exited (zombies count as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the command name, which is in parentheses and may contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def pid_exists(pid: int) -> bool:
    """True while ``pid`` has an entry in /proc, zombies included."""
    return os.path.exists(f"/proc/{pid}")


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` so that a reader polling for ``path`` never sees it half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_when_present(path: str | os.PathLike[str], timeout: float = DEADLINE) -> str:
    """Waits for a file written by :func:`write_atomically` and returns its text."""
    path = Path(path)
    if not wait_until(path.exists, timeout):
        raise AssertionError(f"{path} did not appear within {timeout} s")
    return path.read_text()


class Interrupted(Exception):
    """Raised by :func:`raise_interrupted`, a signal handler that interrupts a wait."""


def raise_interrupted(signum: int, frame: object) -> None:
    """A signal handler that raises, as Ctrl-C's does: a wait must end with it."""
    raise Interrupted(signum)
